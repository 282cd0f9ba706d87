-- PKCE flow states of hosted sign-in (GET/POST /authorize, then POST /token?grant_type=pkce).
-- 0001 sketched this table before anything used it (no code ever wrote a row), so it is made
-- again with the shape the flow needs: a state exists only once the user has signed in, holds
-- the SHA-256 of its auth code (never the code), and expires by created_at (300 s).

DROP TABLE flow_states;

CREATE TABLE flow_states (
    id TEXT PRIMARY KEY,
    auth_code_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_challenge TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    provider TEXT NOT NULL,
    authentication_method TEXT NOT NULL,
    redirect_to TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX flow_states_created ON flow_states (created_at);
CREATE INDEX flow_states_user_id ON flow_states (user_id);
