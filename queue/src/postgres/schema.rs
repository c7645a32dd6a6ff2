//! The queue's schema in PostgreSQL, created and migrated by faxmta
//! itself: [`MIGRATIONS`] in order, each applied once in its own
//! transaction and recorded in `faxmta_schema`. Nodes starting together
//! take turns (a transaction-level advisory lock); a database migrated by
//! a newer faxmta (a version this build does not know) is refused rather
//! than used half-understood.

use super::util::db_error;
use crate::error::QueueError;

/// The advisory lock key of migrations ("faxmta" in ASCII).
const LOCK: i64 = 0x6661_786d_7461;

/// Every migration: version, name, SQL. Never edit one that was
/// released; add the next.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "queue, bodies, ETRN marks, leases, nodes, fax lines, accounts, fax records",
        r#"
CREATE TABLE queue_message (
    id           text COLLATE "C" PRIMARY KEY,
    envelope     bytea NOT NULL,      -- the envelope, compact JSON
    due          bigint,              -- its next attempt as recorded (NULL: held or finished)
    next_try     bigint,              -- the schedule: due, or later while a node postpones it
    postponed_by text,                -- that node
    lease_token  bigint,              -- the delivery lease, if any
    lease_node   text,
    lease_until  timestamptz,
    releasing    boolean NOT NULL DEFAULT false  -- an ETRN answered for it, release pending
);
CREATE INDEX queue_message_schedule ON queue_message (next_try, id) WHERE next_try IS NOT NULL;
CREATE INDEX queue_message_postponed ON queue_message (postponed_by) WHERE postponed_by IS NOT NULL;

-- The nodes sharing the queue, each alive while it renews its row.
CREATE TABLE faxmta_node (
    name        text PRIMARY KEY,
    started     timestamptz NOT NULL,
    alive_until timestamptz NOT NULL
);

CREATE TABLE queue_body (
    id   text NOT NULL REFERENCES queue_message (id) ON DELETE CASCADE,
    seq  integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (id, seq)
);
-- Mail is mostly compressed or encoded already: store it as it is.
ALTER TABLE queue_body ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE queue_etrn (
    domain text NOT NULL,
    id     text NOT NULL REFERENCES queue_message (id) ON DELETE CASCADE,
    held   boolean NOT NULL,
    PRIMARY KEY (domain, id)
);
CREATE INDEX queue_etrn_id ON queue_etrn (id);

CREATE SEQUENCE queue_id_block;
CREATE SEQUENCE queue_lease_token;

-- The site's fax lines: a row per line in use, leased to one call.
CREATE TABLE fax_line (
    pool  text NOT NULL,
    slot  integer NOT NULL,
    node  text NOT NULL,
    token bigint NOT NULL,
    until timestamptz NOT NULL,
    PRIMARY KEY (pool, slot)
);

-- SMTP AUTH users and HTTP API tokens, when kept here.
CREATE TABLE account (
    kind    text NOT NULL,
    key     text NOT NULL,          -- the name, lower case
    name    text NOT NULL,
    hash    text NOT NULL,
    senders text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (kind, key)
);
CREATE INDEX account_hash ON account (kind, hash);

CREATE TABLE fax_history (
    finished  bigint NOT NULL,
    id        text NOT NULL,
    recipient text NOT NULL,
    record    bytea NOT NULL,
    PRIMARY KEY (finished, id, recipient)
);

CREATE TABLE failed_message (
    id text PRIMARY KEY,
    at bigint NOT NULL
);

CREATE TABLE broadcast (
    id      text PRIMARY KEY,
    made    bigint NOT NULL,
    entries bytea NOT NULL
);
"#,
    ),
    (
        2,
        "fax history search, received faxes, usage, fax documents",
        r#"
-- Keys compare as bytes (as on sled): a page cursor means the same on
-- every node whatever the database's locale.
ALTER TABLE fax_history
    ALTER COLUMN id TYPE text COLLATE "C",
    ALTER COLUMN recipient TYPE text COLLATE "C",
    ADD COLUMN sender text NOT NULL DEFAULT '',   -- lower case
    ADD COLUMN search text NOT NULL DEFAULT '';   -- lower case: recipient, number, CSID, sender
DO $$
DECLARE
    r record;
    j jsonb;
BEGIN
    FOR r IN SELECT finished, id, recipient, record FROM fax_history LOOP
        BEGIN
            j := convert_from(r.record, 'UTF8')::jsonb;
        EXCEPTION WHEN others THEN
            CONTINUE;  -- a record that does not parse is skipped anyway
        END;
        UPDATE fax_history SET
            sender = lower(coalesce(j->>'sender', '')),
            search = lower(concat_ws(E'\n', r.recipient, coalesce(j->'progress'->>'number', ''),
                           coalesce(j->'progress'->>'remote_csid', ''), coalesce(j->>'sender', '')))
        WHERE finished = r.finished AND id = r.id AND recipient = r.recipient;
    END LOOP;
END
$$;
CREATE INDEX fax_history_sender ON fax_history (sender, finished);
CREATE INDEX fax_history_id ON fax_history (id, recipient);

CREATE TABLE fax_received (
    key         text COLLATE "C" PRIMARY KEY,
    received_at bigint NOT NULL,
    recipients  text[] NOT NULL,   -- lower case
    search      text NOT NULL,     -- lower case: numbers, TSI, recipients
    record      bytea NOT NULL
);
CREATE INDEX fax_received_time ON fax_received (received_at, key);

CREATE TABLE fax_usage (
    at        bigint NOT NULL,
    fax       text NOT NULL,
    usr       text NOT NULL,
    direction text NOT NULL,
    record    bytea NOT NULL,
    PRIMARY KEY (at, fax, usr, direction)
);

CREATE TABLE fax_document (
    key  text PRIMARY KEY,
    at   bigint NOT NULL,
    data bytea NOT NULL
);
-- TIFF-F is compressed already: store it as it is.
ALTER TABLE fax_document ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX fax_document_at ON fax_document (at);
"#,
    ),
];

/// Apply the migrations this database lacks. Returns every migration
/// known with whether it was applied now.
pub async fn migrate(
    client: &mut tokio_postgres::Client,
) -> Result<Vec<(i32, String, bool)>, QueueError> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| db_error("migrating the schema", e))?;
    tx.batch_execute("SET LOCAL synchronous_commit TO on")
        .await
        .map_err(|e| db_error("migrating the schema", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await
        .map_err(|e| db_error("migrating the schema (lock)", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS faxmta_schema (
             version integer PRIMARY KEY,
             name    text NOT NULL,
             applied timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(|e| db_error("migrating the schema", e))?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM faxmta_schema ORDER BY version", &[])
        .await
        .map_err(|e| db_error("reading the schema version", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some(newer) = applied.iter().find(|v| **v > known) {
        return Err(super::util::other_error(
            "the schema",
            format!(
                "the database has schema version {newer}, made by a newer faxmta \
                 (this one knows up to {known}); upgrade this node"
            ),
        ));
    }
    let mut out = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let now = !applied.contains(version);
        if now {
            tx.batch_execute(sql)
                .await
                .map_err(|e| db_error(&format!("applying migration {version} ({name})"), e))?;
            tx.execute(
                "INSERT INTO faxmta_schema (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await
            .map_err(|e| db_error("recording a migration", e))?;
            tracing::info!("queue database: applied migration {version} ({name})");
        }
        out.push((*version, name.to_string(), now));
    }
    tx.commit()
        .await
        .map_err(|e| db_error("committing the migrations", e))?;
    Ok(out)
}
