#!/usr/bin/env bash
# bench/fax-sip.sh: the SIP engine's fax over T.38 and over G.711 audio:
# pages per minute of one call next to the line-rate limit (V.17,
# 14400 bit/s), and CPU per concurrent call / how many concurrent calls
# the machine's cores carry. bench/fax.sh runs it as its part 3; alone:
#
#   bash bench/fax-sip.sh            (or: SIP_ONLY=1 bash bench/fax.sh)
#
# A benchmark that prints figures; it asserts nothing about speed. It fails
# only when it cannot measure (a tool is missing, the build fails, a run of
# the driver dies). Calls that fail are figures, not errors.
#
# The driver is transports/fax/examples/sip_calls.rs (built here with
# `cargo build --release -p faxmta-fax --example sip_calls`): two SIP
# engines in one process on 127.0.0.1, each the other's trunk (by IP, no
# registrar, no DNS: nothing asks the system resolver), separate SIP ports
# and media port ranges (20000-29999 and 30000-39999). T.38: the caller
# offers T.38 at once (t38 = "offer"), the answerer takes it; G.711: both
# have t38 = "off" (PCMU). Every call is paced in real time (20 ms
# ticks): T.38 and G.711 run at line speed by design.
#
# The document: business letters laid out like the ITU-T No.1 test chart
# (the same generator as bench/fax.sh's line part: letterhead, addresses,
# three paragraphs, a signature; PostScript made into a PDF by
# ghostscript), attached to a mail and rendered by faxmta's renderer
# (A4, fine resolution unless RES=standard, no cover page) into TIFF-F.
# The driver prints each page's size coded T.6 (what a V.17 ECM line
# carries when both ends offer T.6, as spandsp's do).
#
# 1. One call. A 1-page and an N-page letter (N = PAGES) over each mode,
#    one call each. Per page, net of call set-up = (N-page call - 1-page
#    call) / (N - 1); pages per minute = 60 / that. Next to it the line
#    rate limit: the page's T.6 bits / 14400 bit/s, and the rest (T.30's
#    per-page overhead: ECM framing, PPS/MCF at V.21 300 bit/s, the
#    image carrier's training).
# 2. Concurrent calls. C = CALLS (1 4 16 64 128 256) calls of the 1-page
#    letter at once, per mode; each engine's max_calls = C. Per level:
#    calls sent (T.30 OK, all pages) and received (complete, pages equal),
#    call time (median, min-max, and the median over the 1-call median),
#    the process's CPU time (getrusage: user+sys, every thread; BOTH ends
#    of every call are in the process, so per call per side = CPU / 2C),
#    the audio session's own "fell behind" events (it restarts its
#    schedule when more than 5 ticks late; T.38 catches up silently),
#    packets the receivers counted lost, and how late a probe thread paced
#    like the media threads (20 ms deadline ticks) woke up (p99, max).
#    A mode's sweep stops after the first level where a call fails.
#    Media sessions run on tokio's blocking pool (spawn_blocking), 512
#    threads by default as in `faxmta serve`: 256 pairs here are 512
#    sessions.
#
# The machine's other work skews every figure: run it when nothing else
# runs (the script prints how busy the cores were just before).
#
# Environment (all optional):
#   SIP_CALLS_BIN   use this driver instead of building it
#   PAGES=10        pages of the long letter (part 1)
#   RES=fine        fine|standard
#   MODES="t38 g711"
#   CALLS="1 4 16 64 128 256"  concurrency levels (part 2; C = 1 is part
#                   1's 1-page call when part 1 runs)
#   SWEEP=1         0 skips part 2;  SINGLE=1: 0 skips part 1
#   CALL_TIMEOUT    seconds a run's calls may take (default 120 + 30 per page)
#   RAMP_MS=20      ms between the starts of a level's calls (0: one burst;
#                   more than 64 INVITEs in one burst meet the engine's
#                   queue of 64 new calls and some are refused 486)
#   BENCH_DIR       parent of the temp dir (default $TMPDIR or /tmp)
#   KEEP=1          keep the temp dir (inputs, TIFFs, raw rows)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PAGES=${PAGES:-10}
RES=${RES:-fine}
MODES=${MODES:-t38 g711}
CALLS=${CALLS:-1 4 16 64 128 256}
SWEEP=${SWEEP:-1}
SINGLE=${SINGLE:-1}
CALL_TIMEOUT=${CALL_TIMEOUT:-}
RAMP_MS=${RAMP_MS:-20}
export LC_ALL=C

die() { echo "fax-sip.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }
cpu_snap() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
cpu_busy() { echo "$1 $2" | awk '{ b = $3 - $1; i = $4 - $2; printf "%.0f%%", (b + i) ? 100 * b / (b + i) : 0 }'; }

[[ $PAGES =~ ^[0-9]+$ && $PAGES -ge 2 ]] || die "PAGES=$PAGES: a number of at least 2"
[[ $RES == fine || $RES == standard ]] || die "RES=$RES: fine or standard"

command -v python3 >/dev/null || die "python3 is required (the letters)"
# shellcheck source=../scripts/lib/packages.sh
source "$REPO/scripts/lib/packages.sh"
need_packages ghostscript fonts-urw-base35 \
    || die "could not install ghostscript fonts-urw-base35 (apt-get); install them and run again"
command -v gs >/dev/null || die "gs is missing after installing ghostscript"

# --- the driver -------------------------------------------------------------
if [[ -n ${SIP_CALLS_BIN:-} ]]; then
    DRIVER=$SIP_CALLS_BIN
    [[ -x $DRIVER ]] || die "SIP_CALLS_BIN=$DRIVER is not an executable file"
    FROM="SIP_CALLS_BIN; the work tree is at"
else
    note "building the driver (cargo build --release -p faxmta-fax --example sip_calls) in $REPO"
    (cd "$REPO" && cargo build --release --quiet -p faxmta-fax --example sip_calls) >&2 \
        || die "cargo build of the sip_calls example failed"
    DRIVER=${CARGO_TARGET_DIR:-$REPO/target}/release/examples/sip_calls
    [[ -x $DRIVER ]] || die "no driver at $DRIVER after the build"
    FROM="built from the work tree at"
fi

TMP=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/faxmta-sip.XXXXXX")
cleanup() {
    if [[ ${KEEP:-0} == 1 ]]; then note "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== faxmta SIP fax benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:    $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo) RAM, $(uname -sr)"
echo "cpu:        $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
C0=$(cpu_snap); sleep 1
echo "idle check: $(cpu_busy "$C0" "$(cpu_snap)") of all cores busy in the second before the run, load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "            (other work on the machine skews every figure)"
echo "driver:     $DRIVER ($FROM $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n $(git -C "$REPO" status --porcelain -- transports 2>/dev/null) ]] && echo ', work tree has uncommitted changes'))"
echo "document:   ITU No.1-style letters, A4, $RES resolution, rendered by faxmta; 1-page and $PAGES-page"
echo

# --- the letters ------------------------------------------------------------
python3 - "$TMP" "$PAGES" <<'EOF'
import sys
out, pages = sys.argv[1], int(sys.argv[2])
words = ("fax transport message page line queue relay server modem tone signal "
         "paper document resolution header report delivery network the a of "
         "and to in is for on with as by at from this that be are was it").split()
import random

# As bench/fax.sh's letters (seed 13): one letter per page.
def letter(pages, name):
    r = random.Random(13)
    ps = ["%!PS-Adobe-3.0", "%%%%Pages: %d" % pages, "%%EndComments"]
    for p in range(1, pages + 1):
        ps += ["%%%%Page: %d %d" % (p, p), "<< /PageSize [595 842] >> setpagedevice",
               "/Helvetica-Bold findfont 18 scalefont setfont 72 770 moveto (THE BENCHMARK COMPANY LIMITED) show",
               "/Helvetica findfont 8 scalefont setfont 72 756 moveto "
               "(REGISTERED OFFICE: 60 NORTH STREET, EXAMPLETOWN   TELEPHONE 0555 12345) show",
               "1 setlinewidth 72 748 moveto 523 748 lineto stroke",
               "/Times-Roman findfont 11 scalefont setfont"]
        y = 720
        head = ["Our Ref. 350/BEN/EAC", "", "18th January, 2026.", "", "Dr. P.N. Example,",
                "Mining Surveys Ltd.,", "Holroyd Road,", "Exampletown.", "", "Dear Pete,", ""]
        for l in head:
            ps.append("72 %d moveto (%s) show" % (y, l))
            y -= 14
        for _ in range(3):
            for _ in range(r.randint(5, 7)):
                ps.append("72 %d moveto (%s) show" % (y, " ".join(r.choice(words) for _ in range(r.randint(11, 14)))))
                y -= 14
            y -= 14
        for l in ["Yours sincerely,", "", "", "", "P.J. EXAMPLE", "Group Leader - Facsimile Research"]:
            ps.append("72 %d moveto (%s) show" % (y, l))
            y -= 14
        ps.append("1.2 setlinewidth newpath 80 %d moveto 100 %d 120 %d 150 %d curveto "
                  "170 %d 185 %d 200 %d curveto stroke" % (y + 60, y + 80, y + 40, y + 62, y + 75, y + 50, y + 66))
        ps.append("showpage")
    ps.append("%%EOF")
    with open("%s/%s.ps" % (out, name), "w") as f:
        f.write("\n".join(ps) + "\n")

letter(1, "letter1")
letter(pages, "letterN")
EOF
for d in letter1 letterN; do
    gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=pdfwrite -sOutputFile="$TMP/$d.pdf" "$TMP/$d.ps" \
        || die "ghostscript could not make $d.pdf"
    python3 - "$TMP/$d.pdf" "$TMP/$d.eml" <<'EOF'
import base64, sys
pdf, out = sys.argv[1:3]
data = base64.encodebytes(open(pdf, "rb").read()).decode().rstrip("\n")
mail = ["From: Alice Example <alice@example.test>", "To: +15551234567@fax.test",
        "Subject: Benchmark letters", "Date: Sat, 21 Nov 2026 12:00:00 +0000",
        "MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="=-b-="', "",
        "--=-b-=", 'Content-Type: application/pdf; name="letters.pdf"',
        "Content-Transfer-Encoding: base64", "", data, "--=-b-=--", ""]
open(out, "w").write("\r\n".join(mail))
EOF
    "$DRIVER" render "$TMP/$d.eml" "$TMP/$d.tif" "$RES" >"$TMP/$d.pages" \
        || die "the driver could not render $d"
done
N_RENDERED=$(grep -c '^page' "$TMP/letterN.pages")
[[ $N_RENDERED == "$PAGES" ]] || die "the $PAGES-page letter rendered as $N_RENDERED pages"

# run MODE DOC PAGES C: one driver run, its row appended to $TMP/rows
run() {
    note "$1: $4 call(s) of the $3-page letter"
    "$DRIVER" calls "$2" "$3" "$1" "$4" "${CALL_TIMEOUT:-$((120 + 30 * $3))}" "$RAMP_MS" >"$TMP/row" \
        || die "the driver failed ($1, $4 calls of $3 pages)"
    echo "$3 $(cat "$TMP/row")" >>"$TMP/rows"
}
: >"$TMP/rows"

# --- 1. one call --------------------------------------------------------------
if [[ $SINGLE != 0 ]]; then
    for mode in $MODES; do
        run "$mode" "$TMP/letter1.tif" 1 1
        run "$mode" "$TMP/letterN.tif" "$PAGES" 1
    done
fi

# --- 2. concurrent calls --------------------------------------------------------
if [[ $SWEEP != 0 ]]; then
    for mode in $MODES; do
        for c in $CALLS; do
            # C = 1 is part 1's 1-page call, when part 1 ran.
            [[ $c == 1 && $SINGLE != 0 ]] && continue
            run "$mode" "$TMP/letter1.tif" 1 "$c"
            # rows: pages calls mode C sent recv med min max wall user sys behind missed lost p99 max failures
            last=$(tail -1 "$TMP/rows")
            read -r _ _ _ cc sent recv _ <<<"$last"
            if [[ $sent != "$cc" || $recv != "$cc" ]]; then
                note "$mode: $((cc - sent)) of $cc calls not sent, $((cc - recv)) not received complete: the sweep stops here"
                break
            fi
        done
    done
fi

# --- report -------------------------------------------------------------------
# Row fields: 1 pages, 2 "calls", 3 mode, 4 C, 5 sent_ok, 6 recv_ok,
# 7 median s, 8 min s, 9 max s, 10 wall s, 11 user s, 12 sys s,
# 13 behind, 14 missed ticks, 15 lost, 16 probe p99 ms, 17 probe max ms,
# 18.. failures
if [[ $SINGLE != 0 ]]; then
    echo "== 1. one call: pages per minute (T.6 over V.17 14400 bit/s with ECM, both ends spandsp)"
    awk '$1 == "page" { n++; b += $4; r = $3 } END {
        printf "document: %d pages of %d rows; T.6 %.1f KB per page on average = %.2f s per page at 14400 bit/s\n",
            n, r, b / n / 1024, b * 8 / n / 14400 }' "$TMP/letterN.pages"
    printf '%-5s %10s %10s %9s %8s %10s %10s %10s %9s\n' mode "1-page s" "${PAGES}-page s" "s/page" "pages/min" "T.6 s/pg" "limit p/m" "overhead s" "set-up s"
    for mode in $MODES; do
        awk -v mode="$mode" -v n="$PAGES" -v pages="$TMP/letterN.pages" -v one="$TMP/letter1.pages" '
            BEGIN {
                while ((getline l < pages) > 0) { split(l, f, "\t"); if (f[1] == "page" && f[2] > 1) { b += f[4]; k++ } }
                while ((getline l < one) > 0) { split(l, f, "\t"); if (f[1] == "page") b1 = f[4] }
            }
            $3 == mode && $4 == 1 && $1 == 1 { t1 = $7; ok1 = ($5 == 1 && $6 == 1) }
            $3 == mode && $4 == 1 && $1 == n { tn = $7; okn = ($5 == 1 && $6 == 1) }
            END {
                if (!t1 || !tn) { printf "%-5s (a call is missing)\n", mode; exit }
                per = (tn - t1) / (n - 1); data = b * 8 / k / 14400
                printf "%-5s %10.2f %10.2f %9.2f %8.2f %10.2f %10.2f %10.2f %9.2f%s\n", mode, t1, tn, per, 60 / per,
                    data, 60 / data, per - data, t1 - b1 * 8 / 14400, (ok1 && okn) ? "" : "  (a call FAILED: see part 2 rows)"
            }' "$TMP/rows"
    done
    echo "  s/page: (${PAGES}-page call - 1-page call) / $((PAGES - 1)), from INVITE to the sender's result (BYE);"
    echo "  T.6 s/pg: pages 2..$PAGES's T.6 bits / 14400 (the line-rate limit; 'limit p/m' = 60 / it);"
    echo "  overhead: s/page - T.6 s/pg (ECM framing, PPS/MCF at 300 bit/s with 1 s preambles, V.17 training);"
    echo "  set-up: the 1-page call less its page's T.6 time (INVITE/200/ACK, CED, DIS/DCS, TCF, CFR, DCN, BYE)."
    echo
fi

if [[ $SWEEP != 0 ]]; then
    echo "== 2. concurrent calls of the 1-page letter, started $RAMP_MS ms apart (both ends in one process: per call per side = CPU / 2C)"
    printf '%-5s %4s %9s %18s %7s %8s %9s %9s %9s %11s %5s %13s\n' mode C "sent/rcvd" "call s med(min-max)" stretch "CPU s" "CPU/call" "%core" "machine%" "behind/miss" lost "probe p99/max"
    awk -v cores="$(nproc)" '$1 == 1 && $2 == "calls" {
        if ($4 == 1 && !(($3) in base)) base[$3] = $7
        c = $4; cpu = $11 + $12
        stretch = (base[$3] > 0) ? $7 / base[$3] : 0
        per = cpu / (2 * c)
        printf "%-5s %4d %4d/%-4d %6.1f(%5.1f-%5.1f) %7.2f %8.2f %9.3f %8.1f%% %8.0f%% %5d/%-5d %5d %6.1f/%-6.1f\n",
            $3, c, $5, $6, $7, $8, $9, stretch, cpu, per, 100 * per / $7, 100 * cpu / $10 / cores, $13, $14, $15, $16, $17
        if ($18 != "-") { f = $18; for (i = 19; i <= NF; i++) f = f " " $i; printf "      failures: %s\n", substr(f, 1, 400) }
    }' "$TMP/rows"
    echo "  CPU/call: CPU seconds per call per side (one end's work: a faxmta talking to a real line has one end)"
    echo "  %core: that over the median call time = the share of one core one call end keeps busy"
    echo "  machine%: the process's CPU over the run's wall time and all $(nproc) cores"
    echo "  stretch: median call time / the 1-call median of the same mode; behind/miss: the audio"
    echo "  session's 'fell behind' events / ticks skipped (G.711 only; T.38 catches up silently)"
    echo "  probe: how late a 20 ms deadline-paced thread woke up during the run (ms)"
    awk -v cores="$(nproc)" '$1 == 1 && $2 == "calls" && $4 >= 4 && $5 == $4 && $6 == $4 {
            per[$3] = ($11 + $12) / (2 * $4) / $7 }
        END { for (m in per) printf "CPU-bound estimate (%s, from the largest level where every call completed): %.0f call ends on %d cores at 100%%\n",
                m, cores / per[m], cores }' "$TMP/rows" | sort
fi
exit 0
