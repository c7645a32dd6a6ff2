//! RFC 7208 §5.5 to §5.7: the mechanisms ptr, ip4, ip6 and exists (and
//! §5's rule that an IPv4-mapped IPv6 client is an IPv4 client).

use super::Rr::*;
use super::{c, Case, Section};

const IP: &str = "192.0.2.1";
const HELO: &str = "mail.example.test";

/// Shorthand: a MAIL FROM case from `ip`.
const fn m(name: &'static str, ip: &'static str, from: &'static str, result: &'static str) -> Case {
    c(name, ip, HELO, from, result)
}

pub const SECTIONS: &[&Section] = &[
    &Section {
        id: "5.5",
        title: "ptr",
        zone: &[
            Ptr("1.2.0.192.in-addr.arpa", "ptr-host.example.test"),
            Ptr("1.2.0.192.in-addr.arpa", "unvalidated.other.test"),
            A("ptr-host.example.test", "192.0.2.1"),
            Txt("example.test", "v=spf1 ptr -all"),
            Txt("target.example.test", "v=spf1 ptr:example.test -all"),
            Txt("case.example.test", "v=spf1 ptr:EXAMPLE.Test -all"),
            Txt("dot.example.test", "v=spf1 ptr:example.test. -all"),
            Txt("unval.example.test", "v=spf1 ptr:other.test -all"),
            Ptr(
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
                "ptr6.example.test",
            ),
            Aaaa("ptr6.example.test", "2001:db8::1"),
            Txt("cidr.example.test", "v=spf1 ptr/0 -all"),
            Txt("empty.example.test", "v=spf1 ptr:"),
            Servfail("3.2.0.192.in-addr.arpa"),
            Txt("fail.example.test", "v=spf1 ptr:example.test ?all"),
            Ptr("4.2.0.192.in-addr.arpa", "broken.example.test"),
            Ptr("4.2.0.192.in-addr.arpa", "ok4.example.test"),
            Servfail("broken.example.test"),
            A("ok4.example.test", "192.0.2.4"),
            Txt("skip.example.test", "v=spf1 ptr:example.test -all"),
        ],
        cases: &[
            m("current-domain", IP, "u@example.test", "pass"),
            m("target", IP, "u@target.example.test", "pass"),
            m("no-ptr", "192.0.2.2", "u@target.example.test", "fail"),
            m("case-insensitive", IP, "u@case.example.test", "pass"),
            m("final-dot", IP, "u@dot.example.test", "pass"),
            m("not-validated", IP, "u@unval.example.test", "fail"),
            m("ip6", "2001:db8::1", "u@target.example.test", "pass"),
            m("no-prefix-length", IP, "u@cidr.example.test", "permerror"),
            m("empty-domain", IP, "u@empty.example.test", "permerror"),
            m(
                "ptr-servfail-no-match",
                "192.0.2.3",
                "u@fail.example.test",
                "neutral",
            ),
            m(
                "address-servfail-skipped",
                "192.0.2.4",
                "u@skip.example.test",
                "pass",
            ),
        ],
    },
    &Section {
        id: "5.6",
        title: "ip4 and ip6",
        zone: &[
            Txt("ip4-0.example.test", "v=spf1 ip4:192.0.2.1/0 -all"),
            Txt("ip4-32.example.test", "v=spf1 ip4:192.0.2.1/32 -all"),
            Txt("ip4-24.example.test", "v=spf1 ip4:192.0.2.0/24 -all"),
            Txt("ip4-33.example.test", "v=spf1 ip4:192.0.2.1/33 -all"),
            Txt("ip4-032.example.test", "v=spf1 ip4:192.0.2.1/032 -all"),
            Txt("ip4-bare.example.test", "v=spf1 ip4"),
            Txt("ip4-colon.example.test", "v=spf1 ip4:"),
            Txt("ip4-port.example.test", "v=spf1 ip4:192.0.2.1:8080"),
            Txt("ip4-short.example.test", "v=spf1 ip4:192.0.2"),
            Txt("ip4-dual.example.test", "v=spf1 ip4:192.0.2.1//32"),
            Txt("ip4-lead0.example.test", "v=spf1 ip4:192.0.02.1"),
            Txt("ip4-256.example.test", "v=spf1 ip4:192.0.2.256"),
            Txt(
                "mapped.example.test",
                "v=spf1 -ip4:192.0.2.1 ip6:::ffff:192.0.2.1 +all",
            ),
            Txt(
                "ip6-mapped.example.test",
                "v=spf1 ip6:::ffff:192.0.2.1 -all",
            ),
            Txt("ip6-0.example.test", "v=spf1 ip6:::/0"),
            Txt("ip6-33.example.test", "v=spf1 ip6:2001:db8:8000::/33"),
            Txt("ip6-129.example.test", "v=spf1 ip6:2001:db8::/129"),
            Txt("ip6-dual.example.test", "v=spf1 ip6:2001:db8:://64"),
            Txt("ip6-bare.example.test", "v=spf1 -all ip6"),
            Txt("ip6-bad.example.test", "v=spf1 ip6::2001:db8::1"),
            Txt("ip6-v4.example.test", "v=spf1 ip6:192.0.2.1"),
            Txt("ip6-upper.example.test", "v=spf1 ip6:2001:DB8::1 -all"),
        ],
        cases: &[
            m(
                "ip4-length-0",
                "198.51.100.1",
                "u@ip4-0.example.test",
                "pass",
            ),
            m(
                "ip4-never-ip6-client",
                "2001:db8::1",
                "u@ip4-0.example.test",
                "fail",
            ),
            m("ip4-length-32", IP, "u@ip4-32.example.test", "pass"),
            m(
                "ip4-length-32-other",
                "192.0.2.2",
                "u@ip4-32.example.test",
                "fail",
            ),
            m(
                "ip4-length-24",
                "192.0.2.77",
                "u@ip4-24.example.test",
                "pass",
            ),
            m("ip4-length-33", IP, "u@ip4-33.example.test", "permerror"),
            m(
                "ip4-length-leading-zero",
                IP,
                "u@ip4-032.example.test",
                "permerror",
            ),
            m("ip4-bare", IP, "u@ip4-bare.example.test", "permerror"),
            m("ip4-empty", IP, "u@ip4-colon.example.test", "permerror"),
            m("ip4-port", IP, "u@ip4-port.example.test", "permerror"),
            m("ip4-short", IP, "u@ip4-short.example.test", "permerror"),
            m(
                "ip4-dual-length",
                IP,
                "u@ip4-dual.example.test",
                "permerror",
            ),
            m(
                "ip4-leading-zero",
                IP,
                "u@ip4-lead0.example.test",
                "permerror",
            ),
            m("ip4-octet-256", IP, "u@ip4-256.example.test", "permerror"),
            m(
                "mapped-client-is-ip4",
                "::ffff:192.0.2.1",
                "u@mapped.example.test",
                "fail",
            ),
            m("ip4-client", IP, "u@mapped.example.test", "fail"),
            m(
                "ip6-never-ip4-client",
                IP,
                "u@ip6-mapped.example.test",
                "fail",
            ),
            m(
                "ip6-never-mapped-client",
                "::ffff:192.0.2.1",
                "u@ip6-mapped.example.test",
                "fail",
            ),
            m("ip6-length-0-ip4", IP, "u@ip6-0.example.test", "neutral"),
            m(
                "ip6-length-0-ip6",
                "2001:db8::9",
                "u@ip6-0.example.test",
                "pass",
            ),
            m(
                "ip6-length-33",
                "2001:db8:8000::1",
                "u@ip6-33.example.test",
                "pass",
            ),
            m(
                "ip6-length-33-outside",
                "2001:db8::1",
                "u@ip6-33.example.test",
                "neutral",
            ),
            m("ip6-length-129", IP, "u@ip6-129.example.test", "permerror"),
            m(
                "ip6-dual-length",
                IP,
                "u@ip6-dual.example.test",
                "permerror",
            ),
            m("ip6-bare", IP, "u@ip6-bare.example.test", "permerror"),
            m("ip6-bad-address", IP, "u@ip6-bad.example.test", "permerror"),
            m("ip6-ip4-address", IP, "u@ip6-v4.example.test", "permerror"),
            m(
                "ip6-any-case",
                "2001:db8::1",
                "u@ip6-upper.example.test",
                "pass",
            ),
        ],
    },
    &Section {
        id: "5.7",
        title: "exists",
        zone: &[
            A("yes.example.test", "127.0.0.2"),
            Aaaa("v6only.example.test", "2001:db8::2"),
            Txt("ex-yes.example.test", "v=spf1 exists:yes.example.test -all"),
            Txt(
                "ex-v6only.example.test",
                "v=spf1 exists:v6only.example.test -all",
            ),
            Txt(
                "ex-nx.example.test",
                "v=spf1 exists:nowhere.example.test -all",
            ),
            Txt(
                "ex-temp.example.test",
                "v=spf1 exists:servfail.example.test -all",
            ),
            Servfail("servfail.example.test"),
            Txt("ex-bare.example.test", "v=spf1 exists"),
            Txt("ex-empty.example.test", "v=spf1 exists:"),
            Txt("ex-cidr.example.test", "v=spf1 exists:yes.example.test/24"),
        ],
        cases: &[
            m("exists", IP, "u@ex-yes.example.test", "pass"),
            m(
                "a-lookup-for-ip6-client",
                "2001:db8::1",
                "u@ex-yes.example.test",
                "pass",
            ),
            m(
                "aaaa-not-looked-at",
                "2001:db8::2",
                "u@ex-v6only.example.test",
                "fail",
            ),
            m("nxdomain", IP, "u@ex-nx.example.test", "fail"),
            m("servfail", IP, "u@ex-temp.example.test", "temperror"),
            m("no-domain", IP, "u@ex-bare.example.test", "permerror"),
            m("empty-domain", IP, "u@ex-empty.example.test", "permerror"),
            m(
                "no-prefix-length",
                IP,
                "u@ex-cidr.example.test",
                "permerror",
            ),
        ],
    },
];
