-- An account entry is joined to the payment it belongs to (whom a family debit was for):
-- payments found by their movement, and premiums by their refund's.
CREATE INDEX premium_by_movement ON premium_payments (movement_id);
CREATE INDEX premium_by_refund_movement ON premium_payments (refund_movement_id);
CREATE INDEX medical_by_movement ON medical_payments (movement_id);
