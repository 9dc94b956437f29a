#!/bin/sh
# End-to-end replay throughput: a 1e8-sample ri32_le capture (1 channel,
# 1 kHz at 1 MS/s, fundamental + 2 harmonics (HARMONICS=1,2,3,4,5,6,7,8 for
# eight), 10-period blocks) replayed into
# JSON Lines, next to `cat capture > /dev/null` of the same file in the same
# run.  Figures only; nothing here is a pass/fail test.
set -eu
QES=${QES:-build/pipeline/qes}
DIR=${DIR:-$(mktemp -d)}
N=${SECONDS_OF_DATA:-100}
cat > "$DIR/tp.ini" <<INI
[source]
kind = sim
sample_rate_hz = 1000000
seconds = $N
adc_bits = 24
seed = 1
start_time = 2026-11-27T00:00:00Z
[channel.dut]
index = 0
gain = 2.98023223876953125e-07
[sim.dut]
freq_hz = 1000
harmonics = 1,2,3
rms = 1,0.001,0.0005
phase_rad = 0.7,-1.2,2.5
noise_rms = 1e-5
[measure.fund]
channel = dut
method = ${METHOD:-dft}
freq_hz = 1000
harmonics = ${HARMONICS:-1,2,3}
block_periods = 10
INI
echo "simulating $N s at 1 MS/s into $DIR ..."
"$QES" simulate "$DIR/tp.ini" --out "$DIR/tp"
samples=$((N * 1000000))
now() { date +%s.%N; }
cat "$DIR/tp.sigmf-data" > /dev/null   # warm the page cache for both
t0=$(now); cat "$DIR/tp.sigmf-data" > /dev/null; t1=$(now)
"$QES" replay "$DIR/tp.sigmf-meta" -q -o "$DIR/tp.jsonl" --no-verify
t2=$(now)
"$QES" replay "$DIR/tp.sigmf-meta" -q -o "$DIR/tp2.jsonl"
t3=$(now)
awk -v s="$samples" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN {
  printf "cat > /dev/null:              %8.3f s  %10.4g samples/s\n", b-a, s/(b-a);
  printf "qes replay (--no-verify):     %8.3f s  %10.4g samples/s  (%.2f of cat)\n", c-b, s/(c-b), (b-a)/(c-b);
  printf "qes replay (sha512 verified): %8.3f s  %10.4g samples/s  (%.2f of cat)\n", d-c, s/(d-c), (b-a)/(d-c);
}'
# the run records differ (sha512_verified); block and summary records must not
tail -n +2 "$DIR/tp.jsonl" > "$DIR/a"; tail -n +2 "$DIR/tp2.jsonl" > "$DIR/b"
cmp "$DIR/a" "$DIR/b" && echo "block and summary records of both replays byte-identical"
[ -n "${KEEP:-}" ] || rm -rf "$DIR"
