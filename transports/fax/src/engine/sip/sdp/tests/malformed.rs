//! Malformed SDP: an error, never a panic.

use super::samples::*;
use super::*;

#[test]
fn malformed_sdp_is_an_error() {
    let mut v = SessionVersion::new();
    let accept = Accept::default();
    let bad = |text: &str| answer(text, LOCAL, 1, &accept, &mut SessionVersion::new());
    assert!(matches!(bad(""), Err(SdpError::Malformed(_))));
    assert!(matches!(bad("hello"), Err(SdpError::Malformed(_))));
    assert!(matches!(bad("v=0\r\n"), Err(SdpError::Malformed(_))));
    // No t= line.
    let no_t = RTPENGINE_T38_OFFER.replace("t=0 0\r\n", "");
    assert!(matches!(bad(&no_t), Err(SdpError::Malformed(_))));
    // A port that is not one.
    let port = RTPENGINE_T38_OFFER.replace("31200", "70000");
    assert!(matches!(bad(&port), Err(SdpError::Malformed(_))));
    // An address that is not one.
    let addr = RTPENGINE_T38_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.300");
    assert!(matches!(bad(&addr), Err(SdpError::Malformed(_))));
    // A line sdp-rs cannot place is not dropped silently.
    let stray = RTPENGINE_T38_OFFER.replace("a=T38FaxMaxBuffer", "x=junk\r\na=T38FaxMaxBuffer");
    assert!(
        matches!(bad(&stray), Err(SdpError::Malformed(ref m)) if m.contains("x=junk")),
        "{:?}",
        bad(&stray)
    );
    // A T.38 number that is not one.
    let version = RTPENGINE_T38_OFFER.replace("T38FaxVersion:0", "T38FaxVersion:zero");
    assert_eq!(
        bad(&version).unwrap_err(),
        SdpError::BadAttribute {
            name: "T38FaxVersion".into(),
            value: "zero".into()
        }
    );
    let rm = RTPENGINE_T38_OFFER.replace("transferredTCF", "sometimes");
    assert!(matches!(bad(&rm), Err(SdpError::BadAttribute { .. })));
    // A stream with a port and no c= anywhere.
    let no_c = RTPENGINE_T38_OFFER.replace("c=IN IP4 127.0.0.1\r\n", "");
    assert_eq!(bad(&no_c).unwrap_err(), SdpError::NoConnection("T.38"));
    assert!(read_answer("", &Offered::Audio(vec![G711::Ulaw])).is_err());
    // A well-formed SDP still answers afterwards with the same version
    // counter.
    assert!(answer(RTPENGINE_T38_OFFER, LOCAL, 1, &accept, &mut v).is_ok());
}

#[test]
fn no_prefix_truncation_or_byte_change_of_real_sdp_panics() {
    let accept = Accept::default();
    let samples = [
        RTPENGINE_T38_OFFER,
        CISCO_T38_REINVITE,
        DIDWW_AUDIO_AND_T38,
        OPENSIPS_T38_REINVITE,
        AUDIO_REFUSED_T38_MINIMAL,
    ];
    let replacements = [b'\0', b' ', b':', b'=', b'\n', b'9', b'/', 0xff];
    for sample in samples {
        let bytes = sample.as_bytes();
        for cut in 0..bytes.len() {
            let text = String::from_utf8_lossy(&bytes[..cut]);
            let _ = answer(&text, LOCAL, 1, &accept, &mut SessionVersion::new());
            let _ = read_answer(&text, &Offered::T38(T38Params::default()));
        }
        for i in 0..bytes.len() {
            for r in replacements {
                let mut b = bytes.to_vec();
                b[i] = r;
                let text = String::from_utf8_lossy(&b);
                let _ = answer(&text, LOCAL, 1, &accept, &mut SessionVersion::new());
                let _ = read_answer(&text, &Offered::Audio(vec![G711::Ulaw]));
            }
        }
    }
}

#[test]
fn what_devices_write_outside_the_rfc_order_or_form_is_still_read() {
    let base = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\n";
    let media_c = base
        .replace("c=IN IP4 192.0.2.1\r\nt=0 0", "t=0 0")
        .replace(
            "m=audio 5004 RTP/AVP 0\r\n",
            "m=audio 5004 RTP/AVP 0\r\nb=AS:64\r\na=ptime:20\r\nc=IN IP4 192.0.2.7\r\n",
        );
    for (what, text, ip) in [
        ("LF line ends", base.replace("\r\n", "\n"), "192.0.2.1"),
        (
            "no final line end",
            base.trim_end().to_string(),
            "192.0.2.1",
        ),
        (
            "empty lines",
            base.replace("s=-\r\n", "s=-\r\n\r\n"),
            "192.0.2.1",
        ),
        (
            "a host name in o=",
            base.replace("IN IP4 192.0.2.1\r\ns=", "IN IP4 pbx.example.com\r\ns="),
            "192.0.2.1",
        ),
        (
            "a= before c= at session level",
            base.replace(
                "c=IN IP4 192.0.2.1\r\nt=0 0",
                "a=sendrecv\r\nt=0 0\r\nc=IN IP4 192.0.2.1",
            ),
            "192.0.2.1",
        ),
        (
            "b= and a= before c= in a media section",
            media_c,
            "192.0.2.7",
        ),
        ("an empty s=", base.replace("s=-", "s="), "192.0.2.1"),
    ] {
        let sdp = parse(&text).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
        assert_eq!(sdp.media.len(), 1, "{what}");
        assert_eq!(sdp.media[0].port, 5004, "{what}");
        assert_eq!(sdp.media[0].addr, Some(ip.parse().unwrap()), "{what}");
    }
    // Not SDP lines: errors.
    for junk in ["x=unknown type", "junk", "=x"] {
        let text = format!("{base}{junk}\r\n");
        assert!(
            matches!(parse(&text), Err(SdpError::Malformed(_))),
            "{junk}: {:?}",
            parse(&text)
        );
    }
}
