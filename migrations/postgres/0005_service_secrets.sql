-- Secrets the service makes for itself and every instance must share: the
-- key that signs queue messages where Service Bus is reached with Entra ID
-- (no shared access key to sign with). The first instance's random value
-- wins (INSERT ... ON CONFLICT DO NOTHING); later ones read it.
CREATE TABLE service_secrets (
    name    TEXT PRIMARY KEY,
    secret  TEXT NOT NULL
);
