-- Authorizer limits on a funds-sharing binding (SetBindingLimits): SCOPE:PERIOD:FEN entries
-- joined by ';' (SCOPE is ALL or a purpose), empty for none. Setting them is a binding event.
ALTER TABLE bindings ADD COLUMN limits TEXT NOT NULL DEFAULT '';
