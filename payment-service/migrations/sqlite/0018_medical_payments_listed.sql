-- ListMedicalExpensePayments: newest first by the order payments were written (the row ID),
-- by beneficiary, by family account holder, or by institution.
CREATE INDEX medical_by_beneficiary ON medical_payments (beneficiary);
CREATE INDEX medical_by_family_holder ON medical_payments (family_holder);
CREATE INDEX medical_by_institution ON medical_payments (institution_code);
