-- Facts about the sealing of personal data that start-up checks once, not by scanning:
-- 'plaintext_sealed' is set once no row holds personal data in plain text (a database this
-- version created, or one an earlier version wrote, sealed in place).
CREATE TABLE vault_state (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
