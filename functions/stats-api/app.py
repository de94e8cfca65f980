"""stats-api: serves a match's live scoreboard to every viewer's browser (GET /matches/{id}/stats).

Deployed by `statsctl deploy`; DB_HOST is set by statsctl to the RDS Proxy endpoint when the stack says
`via: proxy`. One connection per execution environment (pool_size: 1), opened once and reused across
invocations, never per request.
"""
import json
import os

_conn = None


def _connection():
    global _conn
    if _conn is None:
        import psycopg  # provided by the function's layer

        _conn = psycopg.connect(
            host=os.environ["DB_HOST"],
            port=int(os.environ.get("DB_PORT", "5432")),
            dbname=os.environ.get("DB_NAME", "stats"),
            user=os.environ.get("DB_USER", "stats_api"),
            sslmode="require",
        )
    return _conn


def handler(event, _context):
    match_id = (event.get("pathParameters") or {}).get("id")
    if not match_id:
        return {"statusCode": 400, "body": json.dumps({"error": "missing match id"})}
    with _connection().cursor() as cur:
        cur.execute("SELECT score_ct, score_t, map, rounds_played FROM matches WHERE id = %s", (match_id,))
        row = cur.fetchone()
    if row is None:
        return {"statusCode": 404, "body": json.dumps({"error": "no such match"})}
    body = {"score": {"ct": row[0], "t": row[1]}, "map": row[2], "rounds_played": row[3]}
    return {"statusCode": 200, "headers": {"cache-control": "max-age=5"}, "body": json.dumps(body)}
