#!/usr/bin/env bash
# bench/render-limits.sh: what hostile documents cost.
# Two bombs are made: a PDF whose single content stream inflates to
# PDF_GIB GiB of zeros (about 4 MB for 4 GiB) and a 6000x6000 RGBA16 PNG
# (about 280 KB that decode to 288 MB). For each it prints:
#
#   in-process   `faxmta fax render` (rendering in the calling process, as
#                the server did before the render worker), under
#                /usr/bin/time and a safety address-space cap of
#                INPROC_CAP (prlimit): peak RSS, seconds, how it ended
#                (an abort on the failed allocation is what crash-looped
#                the server)
#   server       the same document mailed to a fax address of a running
#                `faxmta serve` with the default render limits ([fax]
#                render_memory 1G, render_cpu 60s, render_timeout 120s):
#                seconds until the recipient's outcome (sent, or bounced
#                with the reason the sender's report gives), the server's
#                own peak RSS (VmHWM) and the render
#                worker's peak RSS (sampled every 50 ms); the server must
#                still run afterwards.
#
#   bash bench/render-limits.sh
#
# Environment (all optional):
#   FAXMTA_BIN    use this binary instead of `cargo build --release`
#   PDF_GIB=4     the PDF bomb's inflated size in GiB
#   INPROC_CAP=6G the in-process runs' address-space cap
#   SKIP_INPROC=1 only the server runs (the in-process PDF takes minutes)
#   BENCH_DIR     parent of the temp dir; KEEP=1 keeps it
#
# Nothing leaves 127.0.0.0/8.
set -euo pipefail
NAME=render-limits.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib/common.sh
source "$REPO/bench/lib/common.sh"
PDF_GIB=${PDF_GIB:-4}
INPROC_CAP=${INPROC_CAP:-6G}
export LC_ALL=C
command -v python3 >/dev/null || die "python3 is required"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is required (Debian package time)"
command -v prlimit >/dev/null || die "prlimit is required (util-linux)"
build_faxmta "$REPO"

TMP=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/faxmta-render-limits.XXXXXX")
FX_PID=
cleanup() {
    [[ -n $FX_PID ]] && kill "$FX_PID" 2>/dev/null && wait "$FX_PID" 2>/dev/null
    [[ -n ${KEEP:-} ]] && note "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

note "making the bombs in $TMP"
python3 - "$TMP" "$PDF_GIB" <<'PY'
import sys, zlib, struct, base64
tmp, gib = sys.argv[1], int(sys.argv[2])
c = zlib.compressobj(9)
zero = bytes(1 << 20)
stream = b''.join([c.compress(zero) for _ in range(gib * 1024)] + [c.flush()])
objs = [b'<< /Type /Catalog /Pages 2 0 R >>', b'<< /Type /Pages /Count 1 /Kids [3 0 R] >>',
        b'<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>',
        b'<< /Length %d /Filter /FlateDecode >>\nstream\n' % len(stream) + stream + b'\nendstream']
pdf = bytearray(b'%PDF-1.4\n'); offs = []
for i, o in enumerate(objs):
    offs.append(len(pdf)); pdf += b'%d 0 obj\n' % (i + 1) + o + b'\nendobj\n'
x = len(pdf)
pdf += b'xref\n0 5\n0000000000 65535 f \n' + b''.join(b'%010d 00000 n \n' % o for o in offs)
pdf += b'trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n' % x
def chunk(k, d): return struct.pack('>I', len(d)) + k + d + struct.pack('>I', zlib.crc32(k + d))
c = zlib.compressobj(9); row = bytes(1 + 6000 * 8)
idat = b''.join(c.compress(row) for _ in range(6000)) + c.flush()
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 6000, 6000, 16, 6, 0, 0, 0)) \
    + chunk(b'IDAT', idat) + chunk(b'IEND', b'')
for name, ct, data in (('bomb.pdf', 'application/pdf', bytes(pdf)), ('bomb.png', 'image/png', png)):
    open(f'{tmp}/{name}', 'wb').write(data)
    b64 = base64.encodebytes(data).decode().replace('\n', '\r\n')
    msg = ('From: alice@example.test\r\nTo: +15551234567@fax.localhost\r\nSubject: ' + name +
           '\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
           '--B\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n'
           f'--B\r\nContent-Type: {ct}\r\nContent-Disposition: attachment; filename="{name}"\r\n'
           'Content-Transfer-Encoding: base64\r\n\r\n' + b64 + '--B--\r\n')
    open(f'{tmp}/{name}.eml', 'w', newline='').write(msg)
PY
ls -l "$TMP"/bomb.pdf "$TMP"/bomb.png | awk '{ printf "# %s: %d bytes\n", $9, $5 }' >&2

PORT=$(free_port 127.0.0.1)
ADMIN_PORT=$(free_port 127.0.0.1)
cat >"$TMP/faxmta.toml" <<TOML
hostname = "mx.bench.test"
[queue]
path = "$TMP/queue"
retry = ["1s"]
[dns]
nameservers = ["127.0.0.1:9"]
[control]
socket = "$TMP/faxmta.sock"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[tls]
generated_dir = "$TMP/tls"
[[listener]]
addr = "127.0.0.1:$PORT"
role = "mx"
[[domain]]
name = "example.test"
kind = "local"
deliver = "maildir:$TMP/mail/{domain}/{user}"
users = ["alice"]
[[domain]]
name = "fax.localhost"
kind = "fax"
[fax]
retries = 0
spool = "$TMP/spool"
[fax.simulated]
received = "$TMP/remote"
inbound = "$TMP/inbound"
[[fax.user]]
address = "alice@example.test"
TOML

printf '%-9s %-10s %10s %8s  %s\n' document run "peak MiB" seconds result
for doc in bomb.png bomb.pdf; do
    [[ -n ${SKIP_INPROC:-} ]] && break
    out=$( { /usr/bin/time -f 'TIME %M %e' prlimit --as="$(numfmt --from=iec "$INPROC_CAP")" \
        "$BIN" --config "$TMP/faxmta.toml" fax render "$TMP/$doc.eml" -o "$TMP/out.tif"; } 2>&1 || true)
    t=$(grep '^TIME' <<<"$out" | tail -1)
    how=$(grep -v '^TIME' <<<"$out" | grep -E 'page|memory|signal|error|Aborted' | tail -1 | cut -c1-70)
    printf '%-9s %-10s %10s %8s  %s\n' "$doc" in-process "$(calc "$(awk '{print $2}' <<<"$t")/1024")" \
        "$(awk '{print $3}' <<<"$t")" "${how:-?}"
done

"$BIN" serve --config "$TMP/faxmta.toml" >"$TMP/faxmta.log" 2>&1 &
FX_PID=$!
wait_port 127.0.0.1 "$PORT" 30 "$FX_PID" || die "faxmta did not start: $(tail -5 "$TMP/faxmta.log")"
done_docs=0
for doc in bomb.png bomb.pdf; do
    start=$(now)
    python3 - "$PORT" "$TMP/$doc.eml" <<'PY'
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.sendmail('alice@example.test', ['+15551234567@fax.localhost'], open(sys.argv[2], 'rb').read())
s.quit()
PY
    worker_peak=0 line=
    while [[ -z $line ]]; do
        for pid in $(pgrep -P "$FX_PID" 2>/dev/null); do
            r=$(rss_kib "$pid"); ((r > worker_peak)) && worker_peak=$r
        done
        line=$(grep -E 'to=<\+15551234567@fax.localhost>.*status=(sent|bounced)' "$TMP/faxmta.log" \
            | sed -n "$((done_docs + 1))p" || true)
        kill -0 "$FX_PID" 2>/dev/null || die "the server died: $(tail -5 "$TMP/faxmta.log")"
        sleep 0.05
    done
    done_docs=$((done_docs + 1))
    secs=$(calc "$(now) - $start" 2)
    why=$(grep -o 'status=.*' <<<"$line" | sed 's/^status=//; s/cannot be faxed: //' | cut -c1-130)
    printf '%-9s %-10s %10s %8s  %s\n' "$doc" worker "$(calc "$worker_peak/1024")" "$secs" "$why"
done
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$FX_PID/status")
printf 'server peak RSS (VmHWM) %s MiB; the server is still running: %s\n' \
    "$(calc "$hwm/1024")" "$(kill -0 "$FX_PID" && echo yes)"
