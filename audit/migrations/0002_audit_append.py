"""``audit_append``: the one way events enter the table, linked to the chain.

It takes the chain lock (a transaction-level advisory lock, released when the caller's
transaction ends), reads the last row (each statement of a plpgsql function takes a new
snapshot in READ COMMITTED, so it sees the row of the writer that held the lock before),
hashes the new row as audit/chain.py describes, and inserts it. One round trip, whether
the caller has a transaction open or not.
"""

from django.db import migrations

FUNCTIONS = """
CREATE FUNCTION audit_field(value text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN value IS NULL THEN '-;' ELSE length(value)::text || ':' || value || ';' END
$$;

CREATE FUNCTION audit_append(
    p_actor_id integer, p_actor_email varchar, p_actor_role varchar, p_account_id integer,
    p_action varchar, p_target_type varchar, p_target_id varchar, p_target_repr varchar,
    p_path varchar, p_method varchar, p_status smallint, p_ip inet, p_user_agent varchar,
    p_grant_id integer, p_reason text, p_extra jsonb,
    OUT o_seq bigint, OUT o_at timestamptz, OUT o_ip text, OUT o_prev_hash varchar,
    OUT o_hash varchar
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(418581342580);  -- "audit" in ASCII
    SELECT e.seq, e.hash INTO o_seq, o_prev_hash
      FROM audit_auditevent e ORDER BY e.seq DESC LIMIT 1;
    o_seq := coalesce(o_seq, 0) + 1;
    o_prev_hash := coalesce(o_prev_hash, repeat('0', 64));
    o_at := clock_timestamp();
    o_ip := host(p_ip);
    o_hash := encode(sha256(convert_to(
        audit_field(o_seq::text)
        || audit_field(to_char(o_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        || audit_field(p_actor_id::text) || audit_field(p_actor_email)
        || audit_field(p_actor_role) || audit_field(p_account_id::text)
        || audit_field(p_action) || audit_field(p_target_type) || audit_field(p_target_id)
        || audit_field(p_target_repr) || audit_field(p_path) || audit_field(p_method)
        || audit_field(p_status::text) || audit_field(o_ip) || audit_field(p_user_agent)
        || audit_field(p_grant_id::text) || audit_field(p_reason)
        || audit_field(p_extra::text) || audit_field(o_prev_hash),
        'UTF8')), 'hex');
    INSERT INTO audit_auditevent (
        seq, at, actor_id, actor_email, actor_role, account_id, action, target_type,
        target_id, target_repr, path, method, status, ip, user_agent, grant_id, reason,
        extra, prev_hash, hash
    ) VALUES (
        o_seq, o_at, p_actor_id, p_actor_email, p_actor_role, p_account_id, p_action,
        p_target_type, p_target_id, p_target_repr, p_path, p_method, p_status, p_ip,
        p_user_agent, p_grant_id, p_reason, p_extra, o_prev_hash, o_hash
    );
END
$$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION audit_append(
    integer, varchar, varchar, integer, varchar, varchar, varchar, varchar, varchar,
    varchar, smallint, inet, varchar, integer, text, jsonb
);
DROP FUNCTION audit_field(text);
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_audit_event")]

    operations = [migrations.RunSQL(FUNCTIONS, DROP_FUNCTIONS)]
