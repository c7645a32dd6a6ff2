#!/usr/bin/env bash
# bench/fax.sh: fax pages rendered per second by faxmta, next to HylaFAX's
# own pipeline on the same input in the same run, and the simulated line's
# time per page next to V.17's physical figure.
#
# A benchmark that prints figures; it asserts nothing about speed. It fails
# only when it cannot measure (a tool is missing and cannot be installed, a
# render or the server fails, a fax is not reported sent in time).
#
#   bash bench/fax.sh
#
# 1. Rendering. Four inputs made here: a text/plain mail of about 50
#    pages; a mail with a short text part and a 10-page PDF attachment
#    (made with ghostscript's pdfwrite from generated PostScript: text, a
#    line chart, grey bars, a grey disc on every page); a mail with a
#    short text part and six pictures (four 1600x1200 JPEG photos, two
#    1500x1000 PNG charts, drawn by ghostscript); and a mail with a short
#    text part and a 10-page TIFF as a scanner makes it (the PDF's pages
#    at 300 dpi, G4, by ghostscript's tiffg4). Each is rendered
#    RUNS times, at fine and at standard resolution, by
#      - faxmta: `faxmta --config CFG fax render MSG -o OUT.tif` (what the
#        fax transport sends; [fax] compression = "mh", cover_page = false);
#      - HylaFAX: faxmail(1) -n (hylafax-client 6.0) formats the mail into
#        PostScript and submits it, with the PDF part as it is, to a HylaFAX
#        server; here that server is bench/hfaxd-stub.py on 127.0.0.1, which
#        keeps the uploaded documents. They are then converted as HylaFAX's
#        server would (ps2fax / pdf2fax: `gs -sDEVICE=tiffg3 -dSAFER=true
#        -sPAPERSIZE=P -dFIXEDMEDIA -rHxV`, H and V from the job's page size
#        and VRES, exactly as those scripts pick them). Pictures: faxmail
#        converts them itself before the upload, by HylaFAX's typerules
#        (JPEG, PNG: netpbm's jpegtopnm/pngtopnm | ppmtopgm | pnmscale |
#        pnmtops, to PostScript; timed within faxmail), then ps2fax. A TIFF
#        goes up as it is; the server's tiff2fax asks tiffcheck, then
#        copies it, recodes it (tiffcp) or, for another resolution or
#        size, runs tiff2ps -a | ps2fax, as that script does.
#    Runs alternate between the two tools; the figures are medians of the
#    whole processes' wall time (faxmail's includes its upload to the
#    stub), with each tool's own page count, and the size of each tool's
#    pages recoded T.6 (tiffcp -c g4): what they would cost on the line.
# 2. The line. faxmta serve with the simulated engine (spandsp: real T.30
#    over a simulated line, V.17 14400 bit/s with ECM, one line) takes a
#    1-page and a 10-page text mail, the PDF mail, and a 1-page and a
#    10-page PDF of business letters laid out like the ITU-T No.1 test
#    chart, over SMTP from alice@example.test to +15551234567@fax.test,
#    one after the other (each waits for the previous report); the
#    simulated call time comes from the success report (whole seconds) and
#    from the server's "fax call ended" log line (line_seconds, wall_ms).
#    The T.6 data that crossed the line is measured from the simulated
#    remote machine's received TIFF. Once at fine, once at standard
#    resolution; printed next to V.17's ~8 s per ITU No.1 test page
#    (standard resolution), the figure the issue gives. Per page net of
#    call set-up = (10-page call - 1-page call) / (extra pages).
#
# Nothing leaves 127.0.0.1: the stub, faxmta's listener and admin port are
# there, and faxmta's [dns] nameservers is 127.0.0.1:9 (never the system
# resolver); the fax "line" is simulated inside faxmta.
#
# Environment (all optional):
#   FAXMTA_BIN        use this binary instead of `cargo build --release`
#   RUNS=5            renders per tool, input and resolution
#   TEXT_LINES=3250   lines of the long text mail (about 50 pages)
#   PAPER=a4          a4|letter, for both tools
#   LINE=1            0 skips the line measurement (part 2)
#   DELIVERY_WAIT=120 seconds to wait for each fax's success report
#   BENCH_DIR         parent of the temp dir (default $TMPDIR or /tmp)
#   KEEP=1            keep the temp dir (inputs, TIFFs, PostScript, logs)
#   SIP=1             0 skips part 3 (the SIP engine, bench/fax-sip.sh)
#   SIP_ONLY=1        runs only part 3 (its own environment: see its header)
#
# 3. The SIP engine (bench/fax-sip.sh, run after parts 1 and 2): pages per
#    minute over T.38 and over G.711 next to V.17's line rate, CPU per
#    concurrent call and how many concurrent calls the cores carry.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ ${SIP_ONLY:-0} == 1 ]]; then
    exec bash "$REPO/bench/fax-sip.sh"
fi
RUNS=${RUNS:-5}
TEXT_LINES=${TEXT_LINES:-3250}
PAPER=${PAPER:-a4}
LINE=${LINE:-1}
DELIVERY_WAIT=${DELIVERY_WAIT:-120}
export LC_ALL=C

die() { echo "fax.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }
cpu_snap() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
cpu_busy() { echo "$1 $2" | awk '{ b = $3 - $1; i = $4 - $2; printf "%.0f%%", (b + i) ? 100 * b / (b + i) : 0 }'; }

case $PAPER in
    a4) HYLA_PAPER=a4 ;;
    letter) HYLA_PAPER=na-let ;;
    *) die "PAPER=$PAPER: a4 or letter" ;;
esac
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS=$RUNS is not a positive number"

# --- tools ------------------------------------------------------------------
command -v python3 >/dev/null || die "python3 is required (inputs, timing, the hfaxd stub, SMTP)"
# shellcheck source=../scripts/lib/packages.sh
source "$REPO/scripts/lib/packages.sh"
# netpbm: HylaFAX's typerules turn pictures into PostScript with it;
# hylafax-server: tiffcheck, which its tiff2fax asks.
need_packages hylafax-client hylafax-server ghostscript libtiff-tools fonts-urw-base35 netpbm \
    || die "could not install hylafax-client hylafax-server ghostscript libtiff-tools fonts-urw-base35 netpbm (apt-get); install them and run again"
for t in faxmail gs tiffinfo tiffcp tiff2ps tiffcheck jpegtopnm pngtopnm pnmtops; do
    command -v "$t" >/dev/null || die "$t is missing after installing its package"
done
URW=/usr/share/fonts/type1/urw-base35
[[ -f $URW/NimbusMonoPS-Regular.afm ]] || die "no font metrics in $URW (package fonts-urw-base35)"

# --- faxmta binary ----------------------------------------------------------
if [[ -n ${FAXMTA_BIN:-} ]]; then
    BIN=$FAXMTA_BIN
    [[ -x $BIN ]] || die "FAXMTA_BIN=$BIN is not an executable file"
    BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN") # the renders run elsewhere
    BIN_FROM="FAXMTA_BIN; the work tree is at"
else
    note "building faxmta (cargo build --release) in $REPO"
    (cd "$REPO" && cargo build --release --quiet) >&2 || die "cargo build --release failed"
    BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/faxmta
    [[ -x $BIN ]] || die "no binary at $BIN after the build"
    BIN_FROM="built from the work tree at"
fi

# --- temp dir and cleanup ---------------------------------------------------
TMP=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/faxmta-fax.XXXXXX")
FAXMTA_PID=
STUB_PID=
stop_pid() { # stop_pid PID: TERM, wait up to 5 s, then KILL
    kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$1" 2>/dev/null && kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null || true
    return 0
}
cleanup() {
    set +e
    [[ -n $FAXMTA_PID ]] && stop_pid "$FAXMTA_PID"
    [[ -n $STUB_PID ]] && stop_pid "$STUB_PID"
    if [[ ${KEEP:-0} == 1 ]]; then
        note "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"
}
wait_port() { # wait_port ADDR PORT SECONDS PID
    local end=$((SECONDS + $3))
    while ((SECONDS < end)); do
        kill -0 "$4" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# --- the machine ------------------------------------------------------------
echo "== faxmta fax benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:    $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo) RAM, $(uname -sr)"
echo "cpu:        $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
C0=$(cpu_snap); sleep 1
echo "idle check: $(cpu_busy "$C0" "$(cpu_snap)") of all cores busy in the second before the run, load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "            (other work on the machine skews every figure)"
echo "faxmta:     $BIN ($BIN_FROM $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n $(git -C "$REPO" status --porcelain -- src transports queue 2>/dev/null) ]] && echo ', work tree has uncommitted changes'))"
echo "HylaFAX:    faxmail from hylafax-client $(dpkg-query -W -f='${Version}' hylafax-client 2>/dev/null || echo '?'), ghostscript $(gs --version)"
echo "paper:      $PAPER; $RUNS runs per tool, input and resolution"
echo

# --- inputs -----------------------------------------------------------------
IN=$TMP/inputs
mkdir -p "$IN"
note "inputs: text mails (1 page, 10 pages, $TEXT_LINES lines), a 10-page PDF, letters (1 and 10 pages)"
python3 - "$IN" "$TEXT_LINES" <<'EOF'
import base64, random, sys
out, long_lines = sys.argv[1], int(sys.argv[2])
words = ("fax transport message page line queue relay server modem tone signal "
         "paper document resolution header report delivery network the a of "
         "and to in is for on with as by at from this that be are was it").split()
r = random.Random(7)
body = []
while len(body) < long_lines:
    for _ in range(r.randint(3, 8)):
        line = []
        target = r.randint(55, 72)
        while len(" ".join(line)) < target:
            line.append(r.choice(words))
        body.append(" ".join(line))
    body.append("")

def mail(name, subject, lines):
    head = ["From: Alice Example <alice@example.test>",
            "To: +15551234567@fax.test",
            "Subject: " + subject,
            "Date: Sat, 21 Nov 2026 12:00:00 +0000",
            "Message-ID: <bench-%s@example.test>" % name,
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=us-ascii", ""]
    # LF line ends: what a mailer's pipe hands faxmail (it keeps a CR in
    # header values otherwise); the SMTP sender turns them into CRLF.
    with open("%s/%s.eml" % (out, name), "w") as f:
        f.write("\n".join(head + lines) + "\n")

mail("text", "Benchmark text", body[:long_lines])
mail("ten", "Benchmark ten pages", body[:600])
mail("one", "Benchmark one page", body[:40])

# A 10-page A4 PostScript document: a title, 33 lines of Times, a line
# chart, twelve grey bars in a box, a grey disc.
r = random.Random(11)
ps = ["%!PS-Adobe-3.0", "%%Pages: 10", "%%EndComments"]
for p in range(1, 11):
    ps += ["%%%%Page: %d %d" % (p, p), "<< /PageSize [595 842] >> setpagedevice",
           "/Helvetica-Bold findfont 20 scalefont setfont 56 780 moveto "
           "(Benchmark document, page %d of 10) show" % p,
           "/Times-Roman findfont 11 scalefont setfont"]
    y = 750
    for _ in range(33):
        ps.append("56 %d moveto (%s) show" % (y, " ".join(r.choice(words[:18]) for _ in range(r.randint(9, 13)))))
        y -= 14
    ps.append("0 setgray 1.5 setlinewidth newpath 56 262 moveto")
    ps += ["%d %d lineto" % (56 + k * 20, 262 + r.randint(-12, 12)) for k in range(1, 25)]
    ps.append("stroke 0.5 setlinewidth 56 120 483 110 rectstroke")
    ps += ["%.2f setgray %d 125 30 %d rectfill" % (0.2 + 0.05 * (k % 6), 66 + k * 38, r.randint(10, 95))
           for k in range(12)]
    ps += ["newpath 480 60 30 0 360 arc closepath 0.7 setgray fill",
           "0 setgray newpath 480 60 30 0 360 arc stroke", "showpage"]
ps.append("%%EOF")
with open(out + "/doc.ps", "w") as f:
    f.write("\n".join(ps) + "\n")

# Business letters in the manner of the ITU-T No.1 test chart (a one-page
# letter: letterhead, addresses, three paragraphs, a signature), A4, one
# per page: the kind of page the V.17 per-page figure is quoted for.
def letter(pages):
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
    with open("%s/letter%d.ps" % (out, pages), "w") as f:
        f.write("\n".join(ps) + "\n")

letter(1)
letter(10)
EOF
for d in doc letter1 letter10; do
    gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=pdfwrite -sOutputFile="$IN/$d.pdf" "$IN/$d.ps" \
        || die "ghostscript could not make $d.pdf"
done
# The scanned document: the PDF's pages at 300 dpi, G4, as a scanner
# (or a copier's "scan to mail") makes them.
gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=tiffg4 -r300 -sOutputFile="$IN/scan.tif" "$IN/doc.ps" \
    || die "ghostscript could not make scan.tif"
# Pictures: four photos (gradients, a sun, a house, a caption; each in
# other colours) as JPEG at 1600x1200, two charts (lines, bars, text on
# white) as PNG at 1500x1000.
for k in 1 2 3 4; do
    cat >"$IN/photo$k.ps" <<PS
%!PS
<< /PageSize [576 432] >> setpagedevice
<< /ShadingType 2 /ColorSpace /DeviceRGB /Coords [0 432 0 200] /Extend [true true]
   /Function << /FunctionType 2 /Domain [0 1] /C0 [0.$((k + 2)) 0.5 0.9] /C1 [0.9 0.9 1.0] /N 1 >> >> shfill
gsave 0 0 576 200 rectclip
<< /ShadingType 2 /ColorSpace /DeviceRGB /Coords [0 200 0 0] /Extend [true true]
   /Function << /FunctionType 2 /Domain [0 1] /C0 [0.3 0.$((k + 4)) 0.2] /C1 [0.1 0.3 0.05] /N 1 >> >> shfill
grestore
<< /ShadingType 3 /ColorSpace /DeviceRGB /Coords [$((300 + 40 * k)) 350 0 $((300 + 40 * k)) 350 60]
   /Function << /FunctionType 2 /Domain [0 1] /C0 [1 1 0.6] /C1 [1 0.6 0.1] /N 1 >> >> shfill
0.5 0.3 0.2 setrgbcolor $((60 + 30 * k)) 150 80 120 rectfill
0.8 0.1 0.1 setrgbcolor newpath $((50 + 30 * k)) 270 moveto $((100 + 30 * k)) 330 lineto $((150 + 30 * k)) 270 lineto closepath fill
0.2 0.2 0.2 setrgbcolor /Helvetica-Bold findfont 28 scalefont setfont 200 60 moveto (Holiday 2026, picture $k) show
showpage
PS
    gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=jpeg -dJPEGQ=85 -r200 -sOutputFile="$IN/photo$k.jpg" "$IN/photo$k.ps" \
        || die "ghostscript could not make photo$k.jpg"
done
for k in 1 2; do
    cat >"$IN/chart$k.ps" <<PS
%!PS
<< /PageSize [540 360] >> setpagedevice
1 setgray 0 0 540 360 rectfill 0 setgray
/Helvetica-Bold findfont 18 scalefont setfont 40 330 moveto (Quarterly figures, chart $k) show
0.5 setlinewidth 40 40 moveto 40 310 lineto 520 40 moveto 40 40 lineto stroke
/Helvetica findfont 9 scalefont setfont
0 1 11 { 40 mul 50 add 25 moveto (Q) show } for
0 0.6 0.2 setrgbcolor 0 1 11 { dup 40 mul 55 add exch 7 mul $((k * 13)) add 37 mod 6 mul 10 add 45 exch 20 exch rectfill } for
0.8 0 0 setrgbcolor 2 setlinewidth 45 100 moveto 0 1 11 { dup 40 mul 60 add exch 11 mul $((k * 7)) add 29 mod 7 mul 80 add lineto } for stroke
showpage
PS
    gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=png16m -r200 -sOutputFile="$IN/chart$k.png" "$IN/chart$k.ps" \
        || die "ghostscript could not make chart$k.png"
done
python3 - "$IN" <<'EOF'
import base64, sys
out = sys.argv[1]

def pdf_mail(name, subject, pdf, text):
    data = base64.encodebytes(open("%s/%s.pdf" % (out, pdf), "rb").read()).decode()
    head = ["From: Alice Example <alice@example.test>", "To: +15551234567@fax.test",
            "Subject: " + subject, "Date: Sat, 21 Nov 2026 12:00:00 +0000",
            "Message-ID: <bench-%s@example.test>" % name, "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="=-bench-="', ""]
    parts = []
    if text:
        parts += ["--=-bench-=", "Content-Type: text/plain; charset=us-ascii", "", text, ""]
    parts += ["--=-bench-=", 'Content-Type: application/pdf; name="%s.pdf"' % pdf,
              'Content-Disposition: attachment; filename="%s.pdf"' % pdf,
              "Content-Transfer-Encoding: base64", "", data.rstrip("\n"), "--=-bench-=--", ""]
    with open("%s/%s.eml" % (out, name), "w") as f:
        f.write("\n".join(head + parts))

# For rendering (and the line): a short text part and the 10-page PDF.
pdf_mail("pdf", "Benchmark PDF", "doc", "The document is attached.")

def files_mail(name, subject, text, files):
    head = ["From: Alice Example <alice@example.test>", "To: +15551234567@fax.test",
            "Subject: " + subject, "Date: Sat, 21 Nov 2026 12:00:00 +0000",
            "Message-ID: <bench-%s@example.test>" % name, "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="=-bench-="', "",
            "--=-bench-=", "Content-Type: text/plain; charset=us-ascii", "", text, ""]
    parts = []
    for f, ctype in files:
        data = base64.encodebytes(open("%s/%s" % (out, f), "rb").read()).decode()
        parts += ["--=-bench-=", 'Content-Type: %s; name="%s"' % (ctype, f),
                  'Content-Disposition: attachment; filename="%s"' % f,
                  "Content-Transfer-Encoding: base64", "", data.rstrip("\n")]
    with open("%s/%s.eml" % (out, name), "w") as fh:
        fh.write("\n".join(head + parts + ["--=-bench-=--", ""]))

# Rendering only: the pictures, and the scanned TIFF.
files_mail("photo", "Benchmark pictures", "The pictures are attached.",
           [("photo%d.jpg" % k, "image/jpeg") for k in range(1, 5)]
           + [("chart%d.png" % k, "image/png") for k in range(1, 3)])
files_mail("tiff", "Benchmark scan", "The scan is attached.", [("scan.tif", "image/tiff")])
# For the line: the letters alone, 1 and 10 pages.
pdf_mail("letter1", "Benchmark letter", "letter1", None)
pdf_mail("letter10", "Benchmark letters", "letter10", None)
EOF

# --- faxmta render configurations ---------------------------------------------
for res in fine standard; do
    cat >"$TMP/render-$res.toml" <<EOF
hostname = "bench.test"
[fax]
cover_page = false
resolution = "$res"
paper = "$PAPER"
compression = "mh"
EOF
done

# --- HylaFAX: the hfaxd stub and faxmail's configuration ----------------------
HY=$TMP/hylafax
mkdir -p "$HY/fontmap"
# HylaFAX finds a font's metrics through a Ghostscript-style Fontmap in a
# FontMap directory: "/Name (file.ext) ;" -> file.afm in a FontPath
# directory. Debian's hyla.conf points at Fontmap locations of old
# Ghostscript releases and at gsfonts, gone from current Debian, so faxmail
# falls back to fixed-width metrics (and textfmt refuses: no metrics for
# "Courier"). This maps the PostScript base fonts faxmail uses to the URW
# fonts' .afm files that ghostscript itself renders with.
cat >"$HY/fontmap/Fontmap" <<'EOF'
/Courier (NimbusMonoPS-Regular.t1) ;
/Courier-Bold (NimbusMonoPS-Bold.t1) ;
/Courier-Oblique (NimbusMonoPS-Italic.t1) ;
/Courier-BoldOblique (NimbusMonoPS-BoldItalic.t1) ;
/Helvetica (NimbusSans-Regular.t1) ;
/Helvetica-Bold (NimbusSans-Bold.t1) ;
/Helvetica-Oblique (NimbusSans-Italic.t1) ;
/Helvetica-BoldOblique (NimbusSans-BoldItalic.t1) ;
/Times-Roman (NimbusRoman-Regular.t1) ;
/Times-Bold (NimbusRoman-Bold.t1) ;
/Times-Italic (NimbusRoman-Italic.t1) ;
/Times-BoldItalic (NimbusRoman-BoldItalic.t1) ;
EOF
# The stub serves until its stdin closes: a coproc pipe that stays open as
# long as this script runs (and --idle bounds it if the pipe leaks).
coproc STUB_PROC { exec python3 "$REPO/bench/hfaxd-stub.py" "$HY/stub" --idle 900 2>"$HY/stub.err"; }
STUB_PID=$STUB_PROC_PID
STUB_LINE=
read -r -t 15 STUB_LINE <&"${STUB_PROC[0]}" || true
[[ $STUB_LINE =~ ^ready\ ([0-9]+)$ ]] || { cat "$HY/stub.err" >&2; die "bench/hfaxd-stub.py did not start"; }
STUB_PORT=${BASH_REMATCH[1]}
note "hylafax: faxmail submits to bench/hfaxd-stub.py on 127.0.0.1:$STUB_PORT"
# faxmail reads /etc/hylafax/hyla.conf, then ~/.hylarc: a private HOME per
# resolution (VRes is the job's vertical resolution, used by ps2fax).
for res in fine standard; do
    mkdir -p "$HY/home-$res"
    cat >"$HY/home-$res/.hylarc" <<EOF
Host: 127.0.0.1
Port: $STUB_PORT
FontMap: $HY/fontmap
FontPath: $URW
VRes: $([[ $res == fine ]] && echo 196 || echo 98)
EOF
done

# --- 1. rendering -------------------------------------------------------------
cat >"$TMP/render.py" <<'EOF'
"""Renders each input with both tools, RUNS times each, alternating, and
prints one tab-separated line per (input, resolution, tool):
input res tool pages wall_median wall_min wall_max cpu_median self_median
faxmail_median gs_median t6_kb_per_page (seconds; '-' where it does not
apply)."""
import os, re, resource, statistics, subprocess, sys, time

bin_, runs, work, stub, hyla_paper = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
inputs = [a.split("=", 1) for a in sys.argv[6:]]
hy = os.path.join(work, "hylafax")

def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

def run(cmd, **kw):
    """(wall s, cpu s, CompletedProcess) of one child."""
    c0, t0 = cpu(), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, **kw)
    t1, c1 = time.perf_counter(), cpu()
    if p.returncode != 0:
        sys.stderr.write("failed: %s\n%s%s" % (" ".join(cmd), p.stdout.decode(errors="replace"),
                                               p.stderr.decode(errors="replace")))
        sys.exit(1)
    return t1 - t0, c1 - c0, p

def tiff_pages(path):
    out = subprocess.run(["tiffinfo", path], capture_output=True, text=True).stdout
    return len(re.findall(r"^TIFF Directory", out, re.M))

def t6_bytes(path):
    """The image data of `path` recoded T.6 by libtiff (the same coder
    for both tools' pages): what a T.6 fax line would carry."""
    g4 = path + ".g4.tif"
    subprocess.run(["tiffcp", "-c", "g4", path, g4], check=True, capture_output=True)
    out = subprocess.run(["tiffinfo", "-s", g4], capture_output=True, text=True).stdout
    return sum(int(b) for b in re.findall(r"^\s+\d+: \[\s*\d+,\s*(\d+)\]", out, re.M))

def faxmta(name, msg, res, k):
    out = os.path.join(work, "out", "faxmta-%s-%s.tif" % (name, res))
    wall, c, p = run([bin_, "--config", os.path.join(work, "render-%s.toml" % res),
                      "fax", "render", msg, "-o", out], cwd=work)
    m = re.search(rb"(\d+) page\(s\) in (\d+) ms", p.stdout)
    return {"wall": wall, "cpu": c, "self": int(m.group(2)) / 1000 if m else None,
            "out": [out], "said": int(m.group(1)) if m else None}

sessions_file = os.path.join(stub, "sessions")
tiff_actions = set()

def sessions():
    try:
        with open(sessions_file) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []

def hylafax(name, msg, res, k):
    before = len(sessions())
    env = dict(os.environ, HOME=os.path.join(hy, "home-" + res))
    with open(msg, "rb") as f:
        w1, c1, p = run(["faxmail", "-n", "-s", hyla_paper, "5551234567"], stdin=f, env=env, cwd=work)
    # The stub notes the session once faxmail has hung up: not timed.
    for _ in range(500):
        lines = sessions()
        if len(lines) > before:
            break
        time.sleep(0.01)
    else:
        sys.exit("the hfaxd stub did not record faxmail's session")
    f = lines[before].split()
    jobs, vres, pagelength, docs = int(f[1]), f[2], f[4], f[5:]
    if jobs != 1 or not docs:
        sys.exit("faxmail did not submit a job with documents: " + lines[before])
    # ps2fax / pdf2fax: paper from the job's page length (mm), 1728
    # pixels across, vres from the job.
    paper = {"296": "a4", "297": "a4", "279": "letter", "280": "letter"}.get(pagelength)
    if paper is None:
        sys.exit("unexpected PAGELENGTH %s from faxmail" % pagelength)
    hres = "209.10" if paper == "a4" else "203.29"
    if vres not in ("98", "196"):
        sys.exit("unexpected VRES %s from faxmail" % vres)
    gs_wall = gs_cpu = 0.0
    outs = []
    for i, doc in enumerate(docs):
        out = os.path.join(work, "out", "hylafax-%s-%s-%d.tif" % (name, res, i + 1))
        cmd = ["gs", "-q", "-sDEVICE=tiffg3", "-dNOPAUSE", "-dSAFER=true",
               "-sPAPERSIZE=" + paper, "-dFIXEDMEDIA"]
        if doc.endswith(".pdf"):      # pdf2fax.gs
            w, c, _ = run(cmd + ["-dBATCH", "-r%sx%s" % (hres, vres), "-sOutputFile=" + out, doc])
        elif doc.endswith(".ps"):     # ps2fax.gs: cat FILE | gs ... -
            with open(doc, "rb") as d:
                w, c, _ = run(cmd + ["-r%sx%s" % (hres, vres), "-sOutputFile=" + out, "-"], stdin=d)
        elif doc.endswith(".tif"):    # tiff2fax: tiffcheck, then as it says
            length = "297" if paper == "a4" else "279"
            w, c, p2 = run(["tiffcheck", "-r", vres, "-w", "1728", "-l", length, "-1", doc])
            action = (p2.stdout.decode(errors="replace").splitlines() or ["?"])[0].strip()
            if action == "OK":
                w2, c2, _ = run(["cp", "-f", doc, out])
            elif action == "REFORMAT":
                w2, c2, _ = run(["tiffcp", "-i", "-c", "g3:1d", "-f", "lsb2msb", "-r", "9999", doc, out])
            elif action.endswith(("REVRES", "RESIZE", "REIMAGE")):
                # tiff2ps -a FILE | ps2fax, one pipeline, timed whole.
                w2, c2, _ = run(["sh", "-c", 'f=$1; shift; tiff2ps -a "$f" | "$@"', "tiff2fax", doc] + cmd
                                + ["-r%sx%s" % (hres, vres), "-sOutputFile=" + out, "-"])
            else:
                sys.exit("tiffcheck said %r for %s" % (action, doc))
            w, c = w + w2, c + c2
            tiff_actions.add(action)
        else:
            sys.exit("faxmail uploaded a document HylaFAX would need another converter for: " + doc)
        gs_wall += w
        gs_cpu += c
        outs.append(out)
    # faxmail says nothing when all is well (e.g. it warns here when it
    # falls back to fixed-width fonts for want of metrics).
    said = p.stderr.decode(errors="replace").strip()
    return {"wall": w1 + gs_wall, "cpu": c1 + gs_cpu, "faxmail": w1, "gs": gs_wall,
            "out": outs, "docs": docs, "said": said}

os.makedirs(os.path.join(work, "out"), exist_ok=True)
for name, msg in inputs:
    for res in ("fine", "standard"):
        results = {"faxmta": [], "hylafax": []}
        for k in range(runs):
            for tool, fn in (("faxmta", faxmta), ("hylafax", hylafax)):
                results[tool].append(fn(name, msg, res, k))
        for tool, rs in results.items():
            pages = sum(tiff_pages(o) for o in rs[-1]["out"])
            t6 = sum(t6_bytes(o) for o in rs[-1]["out"])
            walls = [r["wall"] for r in rs]
            med = lambda key: ("%.4f" % statistics.median(r[key] for r in rs)) if rs[0].get(key) is not None else "-"
            print("\t".join([name, res, tool, str(pages), med("wall"), "%.4f" % min(walls),
                             "%.4f" % max(walls), med("cpu"), med("self"), med("faxmail"), med("gs"),
                             "%.1f" % (t6 / 1024 / pages)]),
                  flush=True)
            if tool == "faxmta" and rs[-1]["said"] != pages:
                print("note\tfaxmta said %s page(s) for %s at %s, its TIFF has %d" % (rs[-1]["said"], name, res, pages), flush=True)
            if tool == "hylafax":
                kinds = "+".join(os.path.splitext(d)[1][1:] for d in rs[-1]["docs"])
                if tiff_actions:
                    kinds += " (tiffcheck: %s)" % ", ".join(sorted(tiff_actions))
                    tiff_actions.clear()
                print("docs\t%s\t%s\t%s" % (name, res, kinds), flush=True)
                if rs[-1]["said"]:
                    print("note\tfaxmail said: %s" % " / ".join(rs[-1]["said"].splitlines()[:3]), flush=True)
EOF
note "rendering: $RUNS runs per tool, input and resolution (faxmta, then HylaFAX, alternating)"
python3 "$TMP/render.py" "$BIN" "$RUNS" "$TMP" "$HY/stub" "$HYLA_PAPER" \
    "text=$IN/text.eml" "pdf=$IN/pdf.eml" "photo=$IN/photo.eml" "tiff=$IN/tiff.eml" >"$TMP/render.tsv" \
    || die "rendering failed (see above)"

# --- 2. the line ----------------------------------------------------------------
cat >"$TMP/line.py" <<'EOF'
"""Sends one mail to the fax domain, waits for its success report and
prints: qid pages_sent pages_total calls line_s call_wall_ms report_s
bit_rate t6_bytes accept_to_report_s (line_s and call_wall_ms from the
server's "fax call ended" lines of that queue id, summed over calls;
t6_bytes: the strips of the TIFF the simulated remote machine stored,
coded T.6 as received)."""
import glob, os, re, smtplib, subprocess, sys, time

port, msg, maildir, log, remote, wait = sys.argv[1:7]
data = open(msg, "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
s = smtplib.SMTP("127.0.0.1", int(port), timeout=30)
s.ehlo("bench.test")
s.mail("alice@example.test")
code, resp = s.rcpt("+15551234567@fax.test")
if code != 250:
    sys.exit("RCPT refused: %d %s" % (code, resp.decode(errors="replace")))
code, resp = s.data(data)
t0 = time.perf_counter()
s.quit()
m = re.search(rb"queued as (\S+)", resp)
if code != 250 or not m:
    sys.exit("DATA: %d %s" % (code, resp.decode(errors="replace")))
qid = m.group(1).decode()
needle = "X-Faxmta-Queue-ID: " + qid
deadline = time.monotonic() + float(wait)
report = None
while time.monotonic() < deadline and report is None:
    for f in glob.glob(os.path.join(maildir, "new", "*")):
        text = open(f, errors="replace").read()
        if needle in text:
            report = text
            break
    else:
        time.sleep(0.02)
t1 = time.perf_counter()
if report is None:
    sys.exit("no report for %s within %s s" % (qid, wait))
if "Your fax was sent." not in report:
    sys.exit("the fax was not sent:\n" + report[:3000])
def field(name):
    m = re.search(r"^%s: *(.*)$" % re.escape(name), report, re.M)
    return m.group(1).strip() if m else ""
sent, _, total = field("X-Fax-Pages").partition(" of ")
line_s = wall_ms = 0.0
# The log line is written before the report is made: it is there by now.
for l in open(log, errors="replace"):
    if "fax call ended" in l and "job=%s/" % qid in l:
        line_s += float(re.search(r"line_seconds=([\d.]+)", l).group(1))
        wall_ms += float(re.search(r"wall_ms=(\d+)", l).group(1))
t6 = 0
for f in glob.glob(os.path.join(remote, "*", "*-%s_*.tif" % qid)):
    out = subprocess.run(["tiffinfo", "-s", f], capture_output=True, text=True).stdout
    t6 += sum(int(b) for b in re.findall(r"^\s+\d+: \[\s*\d+,\s*(\d+)\]", out, re.M))
print(qid, sent, total, field("X-Fax-Calls"), "%.2f" % line_s, "%.0f" % wall_ms,
      field("X-Fax-Duration"), field("X-Fax-Bit-Rate") or "0", t6, "%.3f" % (t1 - t0))
EOF

# line_run RES: serve at RES, send one, ten, pdf; rows into $TMP/line-RES.txt
line_run() {
    local res=$1 d=$TMP/line-$1 port admin
    mkdir -p "$d"
    port=$(free_port 127.0.0.1)
    admin=$(free_port 127.0.0.1)
    cat >"$d/faxmta.toml" <<EOF
hostname = "mx.bench.test"
[queue]
path = "$d/queue"
[control]
socket = "$d/faxmta.sock"
[admin]
listen = "127.0.0.1:$admin"
# Never the system resolver; nothing here needs DNS.
[dns]
nameservers = ["127.0.0.1:9"]
timeout = "1s"
[tls]
generated_dir = "$d/tls"
[[listener]]
addr = "127.0.0.1:$port"
role = "mx"
tls = "none"
[smtp]
shutdown_grace = "2s"
[log]
level = "info"
[[domain]]
name = "example.test"
kind = "local"
deliver = "maildir:$d/mail/{domain}/{user}"
users = ["alice"]
[[domain]]
name = "fax.test"
kind = "fax"
[fax]
lines = 1
cover_page = false
resolution = "$res"
paper = "$PAPER"
compression = "mh"
success_report = true
spool = "$d/spool"
archive = "$d/sent"
[fax.simulated]
received = "$d/remote"
inbound = "$d/inbound"
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
[[fax.user]]
address = "alice@example.test"
name = "Alice Example"
EOF
    note "line ($res): faxmta serve on 127.0.0.1:$port, simulated engine"
    "$BIN" serve --config "$d/faxmta.toml" 2>"$d/faxmta.log" &
    FAXMTA_PID=$!
    if ! wait_port 127.0.0.1 "$port" 30 "$FAXMTA_PID"; then
        tail -20 "$d/faxmta.log" >&2
        die "faxmta did not start listening on 127.0.0.1:$port"
    fi
    : >"$d/rows.txt"
    local m row
    for m in one ten pdf letter1 letter10; do
        row=$(python3 "$TMP/line.py" "$port" "$IN/$m.eml" "$d/mail/example.test/alice" \
            "$d/faxmta.log" "$d/remote" "$DELIVERY_WAIT") \
            || { tail -20 "$d/faxmta.log" >&2; die "line ($res): the $m mail was not faxed"; }
        echo "$m $row" >>"$d/rows.txt"
    done
    stop_pid "$FAXMTA_PID"
    FAXMTA_PID=
}
if [[ $LINE != 0 ]]; then
    line_run fine
    line_run standard
fi

# --- report -----------------------------------------------------------------
echo "== rendering (median of $RUNS runs; whole processes, wall time)"
echo "faxmta:  faxmta fax render (MH, no cover page); own timer = the 'in X ms' it prints"
echo "HylaFAX: faxmail -n -s $HYLA_PAPER (PostScript, uploaded to the stub) + gs -sDEVICE=tiffg3 per document, as ps2fax/pdf2fax"
printf '%-6s %-8s %-8s %6s %8s %8s %14s %7s %16s %10s\n' input res tool pages "wall s" pages/s "min-max s" "CPU s" "own|faxmail+gs" "T.6 KB/pg"
awk -F'\t' '$1 != "docs" && $1 != "note" {
    detail = ($3 == "faxmta") ? sprintf("%.3f", $9) : sprintf("%.3f+%.3f", $10, $11)
    printf "%-6s %-8s %-8s %6d %8.3f %8.1f %6.3f-%-7.3f %7.3f %16s %10.1f\n", $1, $2, $3, $4, $5, $4 / $5, $6, $7, $8, detail, $12
}' "$TMP/render.tsv"
echo "(T.6 KB/pg: each tool's pages recoded T.6 by libtiff's tiffcp -c g4, the coding a V.17 ECM line carries)"
echo
echo "faxmta / HylaFAX, pages per second (each with its own page count):"
awk -F'\t' '$1 != "docs" && $1 != "note" { r[$1 " " $2 " " $3] = $4 / $5 }
    END { for (k in r) if (k ~ / faxmta$/) { h = k; sub(/ faxmta$/, " hylafax", h)
            if (h in r) { split(k, a, " "); printf "  %-5s %-8s %.2f\n", a[1], a[2], r[k] / r[h] } } }' \
    "$TMP/render.tsv" | sort
awk -F'\t' '$1 == "docs" { printf "HylaFAX documents for %s (%s): %s\n", $2, $3, $4 } $1 == "note" { print $2 }' \
    "$TMP/render.tsv" | sort -u
echo

if [[ $LINE != 0 ]]; then
    echo "== the line (simulated engine: spandsp T.30, V.17 14400 bit/s, ECM; pages go as T.6 if both ends allow)"
    echo "reference: V.17 sends an ITU No.1 test page in about 8 s at standard resolution (the issue's figure)"
    printf '%-9s %-8s %6s %8s %7s %9s %10s %9s %8s %9s\n' res mail pages "line s" "s/page" "report s" "T.6 KB/pg" "T.6 s/pg" "call ms" "SMTP->rpt"
    for res in fine standard; do
        # rows: mail qid sent total calls line_s wall_ms report_s rate t6 e2e
        awk -v res="$res" '{
            rate = ($9 > 0) ? $9 : 14400
            printf "%-9s %-8s %6s %8.1f %7.1f %9s %10.1f %9.1f %8d %9.2f\n", res, $1, $3 "/" $4, $6, $6 / $3, $8,
                $10 / $3 / 1024, $10 * 8 / rate / $3, $7, $11
            if ($5 != 1) printf "          (%s: %s calls)\n", $1, $5
        }' "$TMP/line-$res/rows.txt"
    done
    echo
    echo "per page, net of call set-up (the 10-page call minus the 1-page call, over the extra pages):"
    for res in fine standard; do
        for pair in "ten one text" "letter10 letter1 letters"; do
            # shellcheck disable=SC2086
            set -- $pair
            awk -v res="$res" -v big="$1" -v small="$2" -v what="$3" '
                { p[$1] = $3; l[$1] = $6; t[$1] = $10; w[$1] = $7; r[$1] = ($9 > 0) ? $9 : 14400 }
                END {
                    n = p[big] - p[small]
                    if (n <= 0) { printf "  %-9s %-8s (the 10-page mail made no more pages than the 1-page one)\n", res, what; exit }
                    per = (l[big] - l[small]) / n
                    data = (t[big] - t[small]) * 8 / r[big] / n
                    setup = l[small] - t[small] * 8 / r[small]
                    printf "  %-9s %-8s %5.1f s per page: T.6 data %5.1f s (%5.1f KB), protocol %4.1f s; 1-page call less its data %4.1f s\n",
                        res, what, per, data, (t[big] - t[small]) / n / 1024, per - data, setup
                }' "$TMP/line-$res/rows.txt"
        done
    done
    echo "  (protocol: ECM framing, PPS/MCF after each page, the image carrier's training; the 1-page"
    echo "   figure is call set-up, one page's protocol and hang-up: CED, DIS/DCS, TCF, CFR, DCN)"
    for res in fine standard; do
        awk -v res="$res" '{ l += $6; w += $7 } END { if (w > 0) printf "simulation speed (%s): %.0f s of line in %.1f s of wall time, %.0fx faster than the line\n", res, l, w / 1000, l * 1000 / w }' \
            "$TMP/line-$res/rows.txt"
    done
    echo "  V.17 reference: ~8 s per ITU No.1 page (standard resolution)"
    for res in fine standard; do
        w=$(grep -c ' WARN \| ERROR ' "$TMP/line-$res/faxmta.log" || true)
        [[ $w -gt 0 ]] && echo "faxmta log ($res): $w line(s) at WARN or ERROR (KEEP=1 keeps $TMP/line-$res/faxmta.log)"
    done
fi

# --- 3. the SIP engine ----------------------------------------------------------
if [[ ${SIP:-1} != 0 ]]; then
    echo
    bash "$REPO/bench/fax-sip.sh" || die "the SIP part failed (bench/fax-sip.sh)"
fi
exit 0
