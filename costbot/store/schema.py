"""The store's schema, as numbered migrations applied in order (never edit a shipped one)."""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE findings (
        id TEXT PRIMARY KEY, provider TEXT NOT NULL, account TEXT NOT NULL, region TEXT NOT NULL,
        kind TEXT NOT NULL, resource_id TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL, reason TEXT NOT NULL,
        monthly_cost_usd REAL NOT NULL, monthly_savings_usd REAL NOT NULL,
        price_source TEXT NOT NULL, price_date TEXT NOT NULL, recommendation TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}',
        first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, first_seen_unattached TEXT,
        status_changed_at TEXT NOT NULL, snoozed_until TEXT
    );
    CREATE INDEX findings_unit ON findings (provider, account, region);
    CREATE INDEX findings_status ON findings (status);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, finding_id TEXT NOT NULL, at TEXT NOT NULL,
        actor TEXT NOT NULL, type TEXT NOT NULL, from_status TEXT, to_status TEXT,
        note TEXT NOT NULL DEFAULT '', data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_finding ON events (finding_id, id);
    CREATE TABLE scans (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL,
        provider TEXT NOT NULL, account TEXT NOT NULL, region TEXT NOT NULL,
        started_at TEXT NOT NULL, finished_at TEXT NOT NULL, ok INTEGER NOT NULL,
        error TEXT, resources INTEGER NOT NULL DEFAULT 0, counts TEXT NOT NULL DEFAULT '{}',
        findings INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX scans_unit ON scans (provider, account, region, id);
    CREATE TABLE sightings (
        resource_key TEXT PRIMARY KEY, provider TEXT NOT NULL, account TEXT NOT NULL,
        region TEXT NOT NULL, kind TEXT NOT NULL, first_seen_unattached TEXT NOT NULL
    );
    CREATE INDEX sightings_unit ON sightings (provider, account, region, kind);
    CREATE TABLE prices (
        key TEXT PRIMARY KEY, usd REAL NOT NULL, unit TEXT NOT NULL,
        source TEXT NOT NULL, fetched_at TEXT NOT NULL
    );
    """,
    """
    ALTER TABLE findings ADD COLUMN approved_by TEXT;
    ALTER TABLE findings ADD COLUMN approved_at TEXT;
    ALTER TABLE findings ADD COLUMN approval_source TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE findings ADD COLUMN dry_run_ok INTEGER;
    ALTER TABLE findings ADD COLUMN dry_run_verdict TEXT;
    ALTER TABLE findings ADD COLUMN dry_run_at TEXT;
    ALTER TABLE findings ADD COLUMN outcome TEXT;
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT, finding_id TEXT NOT NULL, action TEXT NOT NULL,
        run_id TEXT NOT NULL, intent_at TEXT NOT NULL, params TEXT NOT NULL DEFAULT '{}',
        result_at TEXT, result TEXT, note TEXT, data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX actions_finding ON actions (finding_id, id);
    """,
    """
    ALTER TABLE findings ADD COLUMN slack_channel TEXT;
    ALTER TABLE findings ADD COLUMN slack_ts TEXT;
    ALTER TABLE findings ADD COLUMN slack_thread_ts TEXT;
    ALTER TABLE findings ADD COLUMN notified_at TEXT;
    ALTER TABLE findings ADD COLUMN notified_cost_usd REAL;
    CREATE INDEX findings_slack ON findings (slack_ts);
    """,
    """
    CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at TEXT NOT NULL);
    """,
    """
    CREATE TABLE cost_rows (
        day TEXT NOT NULL, provider TEXT NOT NULL, account TEXT NOT NULL, service TEXT NOT NULL,
        currency TEXT NOT NULL, amount REAL NOT NULL, fetched_at TEXT NOT NULL,
        PRIMARY KEY (day, provider, account, service, currency)
    );
    CREATE TABLE cost_days (
        day TEXT NOT NULL, provider TEXT NOT NULL, fetched_at TEXT NOT NULL,
        PRIMARY KEY (day, provider)
    );
    """,
)
