#!/usr/bin/env bash
# embedded_perf_java.sh NAME CONFIG_JSON (BENCHMARKS.md, embedded broker with pulsar-perf): runs the
# release pulsar-embedded with CONFIG_JSON (which must bind 127.0.0.1:18050 and admin 127.0.0.1:19480),
# then Java pulsar-perf produce (100 B messages, 10 s, -r 1000000), prints the aggregate, the
# broker's RSS and the data directory's size. pulsar-perf's jars: `scripts/pulsar-broker fetch-perf`.
set -u
name=$1 cfg=$2
W=${W:-$(cd "$(dirname "$0")/../.." && pwd)/target/emb}; mkdir -p "$W/perfconf"
LIB=$HOME/.cache/pulsar-sansio/pulsar-4.0.7/perf-lib-4.0.8
printf 'webServiceUrl=http://127.0.0.1:19480/\nbrokerServiceUrl=pulsar://127.0.0.1:18050/\n' > $W/perfconf/perf-client.conf
echo "$cfg" > $W/$name.json
${BIN:-$W/../release/pulsar-embedded} --config $W/$name.json > $W/$name.log 2>&1 &
pid=$!
sleep 0.5
head -2 $W/$name.log
java -Xms1g -Xmx1g -XX:+UseG1GC -Djava.net.preferIPv4Stack=true --add-opens java.base/java.nio=ALL-UNNAMED \
  --add-opens java.base/jdk.internal.misc=ALL-UNNAMED -cp "$W/perfconf:$LIB/*" \
  org.apache.pulsar.testclient.PulsarPerfTestTool $W/perfconf/perf-client.conf produce \
  -u pulsar://127.0.0.1:18050 -r 1000000 -s 100 -time 10 perf-$name 2>&1 | grep -E "Aggregated throughput|Throughput produced" | tail -3
echo "RSS: $(ps -o rss= -p $pid) kB"
kill $pid; wait $pid 2>/dev/null
du -sh "$W/data-$name" 2>/dev/null
