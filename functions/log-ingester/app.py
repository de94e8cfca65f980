"""log-ingester: accepts game-server log lines (POST /logs) and stores match events.

Deployed by `statsctl deploy`; DB_HOST is set by statsctl. One connection per execution environment.
"""
import os
import re

_conn = None
_MATCH_STATUS = re.compile(r'MatchStatus: Score: (\d+):(\d+) on map "([^"]+)" RoundsPlayed: (\d+)')


def _connection():
    global _conn
    if _conn is None:
        import psycopg  # provided by the function's layer

        _conn = psycopg.connect(host=os.environ["DB_HOST"], dbname=os.environ.get("DB_NAME", "stats"),
                                user=os.environ.get("DB_USER", "log_ingester"), sslmode="require")
    return _conn


def handler(event, _context):
    match_id = (event.get("queryStringParameters") or {}).get("match")
    stored = skipped = 0
    with _connection().cursor() as cur:
        for line in (event.get("body") or "").splitlines():
            m = _MATCH_STATUS.search(line)
            if not m or not match_id:
                skipped += 1
                continue
            cur.execute(
                "INSERT INTO matches (id, score_ct, score_t, map, rounds_played) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET score_ct = EXCLUDED.score_ct, score_t = EXCLUDED.score_t, "
                "map = EXCLUDED.map, rounds_played = EXCLUDED.rounds_played",
                (match_id, int(m[1]), int(m[2]), m[3], int(m[4])),
            )
            stored += 1
    _connection().commit()
    return {"statusCode": 200, "body": f'{{"stored": {stored}, "skipped": {skipped}}}'}
