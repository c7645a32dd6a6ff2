//! RFC 7208 §7: macros in domain-specs and explanations, their grammar
//! (§7.1), the letters (§7.2), transformers and escaping (§7.3), and
//! names cut to 253 octets (§7.3).

use super::Rr::*;
use super::{c, e, Case, Section};

const IP: &str = "192.0.2.1";
const HELO: &str = "mail.example.test";

const fn m(name: &'static str, ip: &'static str, from: &'static str, result: &'static str) -> Case {
    c(name, ip, HELO, from, result)
}

pub const SECTIONS: &[&Section] = &[
    &Section {
        id: "7.1",
        title: "Macro grammar",
        zone: &[
            Txt("r.example.test", "v=spf1 -all exp=%{r}.example.test"),
            Txt("c.example.test", "v=spf1 a:%{c}.example.test"),
            Txt("t.example.test", "v=spf1 exists:%{t}.example.test"),
            Txt("x.example.test", "v=spf1 a:%{x}.example.test -all"),
            Txt("paren.example.test", "v=spf1 -exists:%(ir).sbl.example.test ?all"),
            Txt("pct.example.test", "v=spf1 exists:foo%.sbl.example.test ?all"),
            Txt("trail.example.test", "v=spf1 exists:foo.sbl.example.test%"),
            Txt("zero.example.test", "v=spf1 exists:%{d0}.example.test"),
            Txt("open.example.test", "v=spf1 exists:%{d.example.test"),
            Txt(
                "escapes.example.test",
                "v=spf1 a:macro%%percent%_%_space%-url.example.test -all",
            ),
            A("macro%percent  space%20url.example.test", "192.0.2.1"),
            Txt("end.example.test", "v=spf1 a:%{d}.%{d1} -all"),
            A("end.example.test.test", "192.0.2.1"),
        ],
        cases: &[
            m("r-only-in-explanations", IP, "u@r.example.test", "permerror"),
            m("c-only-in-explanations", IP, "u@c.example.test", "permerror"),
            m("t-only-in-explanations", IP, "u@t.example.test", "permerror"),
            m("unknown-letter", IP, "u@x.example.test", "permerror"),
            m("percent-paren", IP, "u@paren.example.test", "permerror"),
            m("percent-dot", IP, "u@pct.example.test", "permerror"),
            m("percent-at-end", IP, "u@trail.example.test", "permerror"),
            m("keep-zero-parts", IP, "u@zero.example.test", "permerror"),
            m("unterminated", IP, "u@open.example.test", "permerror"),
            m("percent-space-url-space", IP, "u@escapes.example.test", "pass"),
            m("domain-ends-in-macro", IP, "u@end.example.test", "pass"),
        ],
    },
    &Section {
        id: "7.2",
        title: "Macro letters",
        zone: &[
            A("mail.example.test", "192.0.2.1"),
            Txt("h.example.test", "v=spf1 a:%{h} -all"),
            Txt("o.example.test", "v=spf1 include:o-inc.example.test -all"),
            Txt("o-inc.example.test", "v=spf1 exists:%{o}.o.example.test"),
            A("o.example.test.o.example.test", "127.0.0.2"),
            Txt("d.example.test", "v=spf1 include:d-inc.example.test -all"),
            Txt("d-inc.example.test", "v=spf1 exists:%{d}.d.example.test"),
            A("d-inc.example.test.d.example.test", "127.0.0.2"),
            Txt("iv.example.test", "v=spf1 exists:%{ir}.%{v}._spf.%{d2} -all"),
            A("1.2.0.192.in-addr._spf.example.test", "127.0.0.2"),
            A(
                "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.test",
                "127.0.0.2",
            ),
            Ptr("42.2.0.192.in-addr.arpa", "mx.other.test"),
            Ptr("42.2.0.192.in-addr.arpa", "mx.p.example.test"),
            A("mx.other.test", "192.0.2.42"),
            A("mx.p.example.test", "192.0.2.42"),
            Txt("p.example.test", "v=spf1 exists:%{p}.should.example.test ~all"),
            A("mx.p.example.test.should.example.test", "127.0.0.2"),
            Ptr("43.2.0.192.in-addr.arpa", "fake.example.test"),
            Txt("punknown.example.test", "v=spf1 exists:%{p}.unknown.example.test -all"),
            A("unknown.unknown.example.test", "127.0.0.2"),
        ],
        cases: &[
            m("h", IP, "u@h.example.test", "pass"),
            m("o-is-the-sender-domain", IP, "u@o.example.test", "pass"),
            m("d-is-the-current-domain", IP, "u@d.example.test", "pass"),
            m("i-reversed-v-in-addr", IP, "u@iv.example.test", "pass"),
            m("i-nibbles-v-ip6", "2001:db8::cb01", "u@iv.example.test", "pass"),
            m("p-prefers-subdomain", "192.0.2.42", "u@p.example.test", "pass"),
            m("p-none-is-unknown", "192.0.2.99", "u@punknown.example.test", "pass"),
            m("p-not-validated-is-unknown", "192.0.2.43", "u@punknown.example.test", "pass"),
        ],
    },
    &Section {
        id: "7.3",
        title: "Transformers, escaping and long names",
        zone: &[
            Txt("split.example.test", "v=spf1 exists:%{i}.%{l2r-}.user.%{d2} -all"),
            A("192.0.2.1.second.first.user.example.test", "127.0.0.2"),
            Txt("delims.example.test", "v=spf1 exists:%{l2r+-}.user.%{d2} -all"),
            A("bar.foo.user.example.test", "127.0.0.2"),
            Txt("one.example.test", "v=spf1 exists:%{l1r-}.one.%{d2} -all"),
            A("first.one.example.test", "127.0.0.2"),
            Txt("upper.example.test", "v=spf1 exists:%{L}.up.example.test -all"),
            A("a%3Db.up.example.test", "127.0.0.2"),
            Txt(
                "trunc.example.test",
                "v=spf1 -all exp=%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.msg.test",
            ),
            Txt(
                "example.test.trunc.example.test.trunc.example.test.trunc.example.test.trunc.example.test.trunc.example.test.trunc.example.test.trunc.example.test.trunc.example.test.trunc.example.test.trunc.example.test.trunc.example.test.trunc.example.test.msg.test",
                "Cut from the left.",
            ),
        ],
        cases: &[
            m("reverse-split-keep", IP, "first-second@split.example.test", "pass"),
            m("several-delimiters", IP, "foo-bar+zip+quux@delims.example.test", "pass"),
            m("keep-one", IP, "first-second@one.example.test", "pass"),
            m("upper-case-escapes", IP, "a=b@upper.example.test", "pass"),
            e(
                "name-cut-to-253",
                IP,
                "u@trunc.example.test",
                "fail",
                Some("Cut from the left."),
            ),
        ],
    },
];
