#!/usr/bin/env bash
# The main job, end to end on this machine: start the local services, create a PostgreSQL
# table and a MariaDB table, put sample JSON orders on a Kafka topic, run two standalone sinks
# (one per database) until every order is in its table, show the rows, stop the sinks.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/dev-services.sh up
eval "$(scripts/dev-services.sh env)"
cargo build --quiet -p adbsink-runtime -p adbsink-tests --bins
bin=target/debug

run=$(date +%s)
topic="demo-orders-$run"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

host_port() { echo "$1" | sed -E 's#.*@([^:/]+):([0-9]+)/.*#\1 \2#'; }
read -r pg_host pg_port <<<"$(host_port "$ADBSINK_PG_URL")"
read -r my_host my_port <<<"$(host_port "$ADBSINK_MYSQL_URL")"
mysql() { mariadb -h"$my_host" -P"$my_port" -uadbsink -padbsink adbsink "$@"; }

echo "== tables" >&2
psql -q "$ADBSINK_PG_URL" -c "DROP TABLE IF EXISTS demo_orders;
  CREATE TABLE demo_orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(10,2),
                            paid boolean, items jsonb, created_at timestamptz DEFAULT now())"
mysql -e "DROP TABLE IF EXISTS demo_orders;
  CREATE TABLE demo_orders (id BIGINT PRIMARY KEY, customer VARCHAR(64) NOT NULL,
    amount DECIMAL(10,2), paid BOOLEAN, items JSON, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"

echo "== 1000 JSON orders to topic $topic (and 2 malformed ones for the dead-letter topic)" >&2
{
  for i in $(seq 1 1000); do
    printf '{"id": %d, "customer": "customer-%d", "amount": %d.%02d, "paid": %s, "items": [{"sku": "A%d", "qty": %d}]}\n' \
      "$i" $((i % 37)) $((i % 500)) $((i % 100)) "$([ $((i % 3)) -eq 0 ] && echo true || echo false)" "$i" $((i % 5 + 1))
  done
  echo 'not json'
  echo '[1, 2, 3]'
} | "$bin/produce" "$ADBSINK_KAFKA_BOOTSTRAP" "$topic" 6

for kind in postgres mysql; do
  if [ $kind = postgres ]; then type=AnalyticDBForPostgreSQL host=$pg_host port=$pg_port
  else type=AnalyticDBForMySQL host=$my_host port=$my_port; fi
  cat > "$work/$kind.yaml" <<YAML
apiVersion: adbsink.io/v1alpha1
kind: AnalyticDBSink
metadata:
  name: demo-$kind-$run
spec:
  source: {bootstrapServers: "$ADBSINK_KAFKA_BOOTSTRAP", topic: "$topic", concurrency: 3}
  destination:
    instanceType: $type
    host: "$host"
    port: $port
    database: adbsink
    table: demo_orders
    username: adbsink
  write: {writeMode: Upsert, primaryKey: [id], lingerMs: 200}
YAML
  echo "== standalone sink demo-$kind-$run" >&2
  ADBSINK_DB_PASSWORD=adbsink "$bin/adbsink-runtime" standalone "$work/$kind.yaml" \
    --kafka-property session.timeout.ms=6000 --kafka-property heartbeat.interval.ms=500 \
    2> "$work/$kind.log" &
  pids+=($!)
done

count() {
  if [ "$1" = postgres ]; then psql -tAq "$ADBSINK_PG_URL" -c 'SELECT count(*) FROM demo_orders'
  else mysql -N -e 'SELECT count(*) FROM demo_orders'; fi
}
deadline=$((SECONDS + 120))
for i in 0 1; do
  kind=$([ "$i" = 0 ] && echo postgres || echo mysql)
  until [ "$(count $kind)" = 1000 ]; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "demo: $kind table has $(count $kind) of 1000 rows (sink exited or 120 s passed); sink log:" >&2
      tail -30 "$work/$kind.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "== $kind: 1000 rows in demo_orders" >&2
done

echo "== PostgreSQL demo_orders (first 5)"
psql "$ADBSINK_PG_URL" -c 'SELECT id, customer, amount, paid, items FROM demo_orders ORDER BY id LIMIT 5'
echo "== MariaDB demo_orders (first 5)"
mysql -t -e 'SELECT id, customer, amount, paid, items FROM demo_orders ORDER BY id LIMIT 5'
echo "== the two malformed messages went to the dead-letter topic connect-error-demo-<db>-$run"
grep -h 'dead-letter' "$work"/*.log | head -4 >&2 || true
