-- The designated hospitals and pharmacies (定点医药机构, M1), as the core insurance system
-- syncs them: PayMedicalExpense pays a charge only at an institution designated, as that
-- kind, on the day of the charge.
CREATE TABLE designated_institutions (
    code              TEXT PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('HOSPITAL', 'PHARMACY')),
    region            TEXT NOT NULL,
    name              TEXT NOT NULL,
    designated_from   DATE NOT NULL,
    designated_until  DATE CHECK (designated_until >= designated_from),
    update_time       TIMESTAMPTZ NOT NULL
);
