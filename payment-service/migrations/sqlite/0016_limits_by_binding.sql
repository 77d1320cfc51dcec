-- Authorizer limits are counted per binding: its family uses by day, and its live holds.
CREATE INDEX family_uses_by_binding ON family_uses (binding_id, business_date);
CREATE INDEX holds_live_by_binding ON holds (binding_id) WHERE state = 'HELD';
