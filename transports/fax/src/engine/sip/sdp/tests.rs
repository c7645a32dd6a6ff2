//! Tests of sdp.rs: our offers and answers, and remote SDP bodies as real
//! products write them (each with its source), round trips through the
//! parser, and malformed input (an error, never a panic).

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

mod malformed;
mod samples;

use samples::*;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));

fn crlf(lines: &[&str]) -> String {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n");
    s
}

fn lines_of(sdp: &str) -> Vec<&str> {
    sdp.split("\r\n").filter(|l| !l.is_empty()).collect()
}

fn origin_version(sdp: &str) -> (u64, u64) {
    let o = lines_of(sdp)
        .into_iter()
        .find(|l| l.starts_with("o="))
        .unwrap();
    let f: Vec<&str> = o.split(' ').collect();
    (f[1].parse().unwrap(), f[2].parse().unwrap())
}

fn t38(stream: &Stream) -> &T38Stream {
    match stream {
        Stream::T38(t) => t,
        other => panic!("not T.38: {other:?}"),
    }
}

fn audio(stream: &Stream) -> &AudioParams {
    match stream {
        Stream::Audio(a) => a,
        other => panic!("not audio: {other:?}"),
    }
}

#[test]
fn audio_offer_lists_pcmu_and_pcma_with_rtpmap_ptime_and_sendrecv() {
    let mut v = SessionVersion::new();
    let sdp = offer_audio(LOCAL, 30000, &[G711::Ulaw, G711::Alaw], &mut v);
    let l = lines_of(&sdp);
    assert_eq!(l[0], "v=0");
    assert!(l.contains(&"c=IN IP4 127.0.0.9"), "{sdp}");
    assert!(l.contains(&"t=0 0"), "{sdp}");
    let m = l.iter().position(|x| x.starts_with("m=")).unwrap();
    assert_eq!(
        &l[m..],
        &[
            "m=audio 30000 RTP/AVP 0 8",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=ptime:20",
            "a=sendrecv",
        ]
    );
    // Our own offer reads back as what it says.
    let parsed = parse(&sdp).unwrap();
    assert_eq!(parsed.media.len(), 1);
    assert_eq!(parsed.media[0].port, 30000);
    assert_eq!(parsed.media[0].addr, Some(LOCAL));
    assert_eq!(
        parsed.media[0].kind,
        MediaKind::Audio(vec![
            AudioFormat {
                payload_type: 0,
                law: Some(G711::Ulaw)
            },
            AudioFormat {
                payload_type: 8,
                law: Some(G711::Alaw)
            },
        ])
    );
}

#[test]
fn t38_offer_writes_every_attribute_and_reads_back_the_same_parameters() {
    let mut v = SessionVersion::new();
    let params = T38Params {
        version: 0,
        max_bit_rate: 14_400,
        rate_management: RateManagement::TransferredTcf,
        max_buffer: Some(1800),
        max_datagram: Some(400),
        ec: UdptlEc::Fec,
        fill_bit_removal: true,
        transcoding_mmr: true,
        transcoding_jbig: true,
    };
    let sdp = offer_t38(LOCAL, 30002, &params, &mut v);
    let l = lines_of(&sdp);
    let m = l.iter().position(|x| x.starts_with("m=")).unwrap();
    assert_eq!(
        &l[m..],
        &[
            "m=image 30002 udptl t38",
            "a=T38FaxVersion:0",
            "a=T38MaxBitRate:14400",
            "a=T38FaxFillBitRemoval",
            "a=T38FaxTranscodingMMR",
            "a=T38FaxTranscodingJBIG",
            "a=T38FaxRateManagement:transferredTCF",
            "a=T38FaxMaxBuffer:1800",
            "a=T38FaxMaxDatagram:400",
            "a=T38FaxUdpEC:t38UDPFEC",
        ]
    );
    let parsed = parse(&sdp).unwrap();
    assert_eq!(parsed.media[0].kind, MediaKind::T38(params.clone()));
    assert!(parsed.offers_t38());
    assert!(!parsed.offers_g711());

    // The default parameters: redundancy, no booleans written.
    let sdp = offer_t38(LOCAL, 30002, &T38Params::default(), &mut v);
    assert!(sdp.contains("a=T38FaxUdpEC:t38UDPRedundancy\r\n"), "{sdp}");
    assert!(!sdp.contains("FillBitRemoval"), "{sdp}");
    assert_eq!(
        parse(&sdp).unwrap().media[0].kind,
        MediaKind::T38(T38Params::default())
    );
}

#[test]
fn each_new_sdp_in_a_dialog_has_a_higher_origin_version_and_the_same_id() {
    let mut v = SessionVersion::new();
    let first = offer_audio(LOCAL, 30000, &[G711::Ulaw], &mut v);
    let reinvite = offer_t38(LOCAL, 30000, &T38Params::default(), &mut v);
    let (answer_sdp, _) = answer(
        RTPENGINE_T38_OFFER,
        LOCAL,
        30000,
        &Accept::default(),
        &mut v,
    )
    .unwrap();
    let (id1, v1) = origin_version(&first);
    let (id2, v2) = origin_version(&reinvite);
    let (id3, v3) = origin_version(&answer_sdp);
    assert_eq!(id1, v.id());
    assert_eq!((id1, id1), (id2, id3));
    assert_eq!(v2, v1 + 1);
    assert_eq!(v3, v2 + 1);
    // Another dialog: another session id (random; equal by chance once
    // in 2^32).
    let other = SessionVersion::new();
    let again = SessionVersion::new();
    assert!(other.id() != v.id() || again.id() != v.id());
}

#[test]
fn rtpengine_t38_offer_is_answered_with_t38_within_it() {
    let mut v = SessionVersion::new();
    let ours = T38Params {
        max_bit_rate: 9600,
        max_datagram: Some(300),
        ..T38Params::default()
    };
    let accept = Accept {
        t38: Some(ours),
        laws: vec![G711::Ulaw],
    };
    let (sdp, stream) = answer(RTPENGINE_T38_OFFER, LOCAL, 30004, &accept, &mut v).unwrap();
    let s = t38(&stream);
    assert_eq!(s.remote, "127.0.0.1:31200".parse().unwrap());
    assert_eq!(s.params.version, 0);
    assert_eq!(s.params.max_bit_rate, 9600, "the lower of offer and ours");
    assert_eq!(s.params.ec, UdptlEc::Redundancy);
    assert_eq!(s.params.rate_management, RateManagement::TransferredTcf);
    // What we may send: rtpengine's limits.
    assert_eq!(s.params.max_datagram, Some(512));
    assert_eq!(s.params.max_buffer, Some(1800));
    // What we state: ours.
    let l = lines_of(&sdp);
    assert!(l.contains(&"m=image 30004 udptl t38"), "{sdp}");
    assert!(l.contains(&"a=T38MaxBitRate:9600"), "{sdp}");
    assert!(l.contains(&"a=T38FaxMaxDatagram:300"), "{sdp}");
    assert!(l.contains(&"a=T38FaxUdpEC:t38UDPRedundancy"), "{sdp}");
    assert_eq!(l.iter().filter(|x| x.starts_with("m=")).count(), 1);
}

#[test]
fn cisco_reinvite_with_zero_valued_booleans_and_a_lower_bit_rate() {
    let mut v = SessionVersion::new();
    let remote = parse(CISCO_T38_REINVITE).unwrap();
    let MediaKind::T38(p) = &remote.media[0].kind else {
        panic!("{remote:?}")
    };
    assert!(!p.fill_bit_removal && !p.transcoding_mmr && !p.transcoding_jbig);
    assert_eq!(p.max_bit_rate, 7200);
    assert_eq!(p.max_buffer, Some(200));
    assert_eq!(p.max_datagram, Some(180));

    let all = T38Params {
        fill_bit_removal: true,
        transcoding_mmr: true,
        transcoding_jbig: true,
        ..T38Params::default()
    };
    let accept = Accept {
        t38: Some(all),
        laws: vec![],
    };
    let (sdp, stream) = answer(CISCO_T38_REINVITE, LOCAL, 30006, &accept, &mut v).unwrap();
    let s = t38(&stream);
    assert_eq!(s.remote, "10.0.0.2:17682".parse().unwrap());
    assert_eq!(s.params.max_bit_rate, 7200);
    assert!(!s.params.fill_bit_removal);
    assert!(sdp.contains("a=T38MaxBitRate:7200\r\n"), "{sdp}");
    assert!(!sdp.contains("FillBitRemoval"), "{sdp}");
    assert!(!sdp.contains("Transcoding"), "{sdp}");
}

#[test]
fn fill_bit_removal_is_answered_only_when_both_sides_have_it() {
    let mut v = SessionVersion::new();
    let (sdp, stream) = answer(
        OPENSIPS_T38_REINVITE,
        LOCAL,
        30008,
        &Accept::default(),
        &mut v,
    )
    .unwrap();
    assert!(!t38(&stream).params.fill_bit_removal);
    assert!(!sdp.contains("FillBitRemoval"), "{sdp}");
    assert_eq!(
        t38(&stream).remote,
        "192.168.171.230:20334".parse().unwrap()
    );

    let accept = Accept {
        t38: Some(T38Params {
            fill_bit_removal: true,
            ..T38Params::default()
        }),
        laws: vec![],
    };
    let (sdp, stream) = answer(OPENSIPS_T38_REINVITE, LOCAL, 30008, &accept, &mut v).unwrap();
    assert!(t38(&stream).params.fill_bit_removal);
    assert!(sdp.contains("a=T38FaxFillBitRemoval\r\n"), "{sdp}");
}

#[test]
fn an_offer_of_audio_and_t38_gets_one_stream_and_the_other_refused_by_port_0() {
    let mut v = SessionVersion::new();
    // We take T.38: the audio line is answered with port 0.
    let (sdp, stream) = answer(
        DIDWW_AUDIO_AND_T38,
        LOCAL,
        30010,
        &Accept::default(),
        &mut v,
    )
    .unwrap();
    let s = t38(&stream);
    assert_eq!(s.remote, "46.19.209.78:13962".parse().unwrap());
    assert_eq!(s.params.max_datagram, Some(612));
    assert_eq!(s.params.max_buffer, None);
    let m: Vec<&str> = lines_of(&sdp)
        .into_iter()
        .filter(|l| l.starts_with("m="))
        .collect();
    assert_eq!(
        m,
        ["m=audio 0 RTP/AVP 0 8 18 4 101", "m=image 30010 udptl t38"]
    );

    // Without T.38: PCMU, and the image line refused.
    let accept = Accept {
        t38: None,
        ..Accept::default()
    };
    let (sdp, stream) = answer(DIDWW_AUDIO_AND_T38, LOCAL, 30010, &accept, &mut v).unwrap();
    let a = audio(&stream);
    assert_eq!((a.law, a.payload_type), (G711::Ulaw, 0));
    assert_eq!(a.remote, "46.19.209.78:13960".parse().unwrap());
    let l = lines_of(&sdp);
    let m: Vec<&&str> = l.iter().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(m, [&"m=audio 30010 RTP/AVP 0", &"m=image 0 udptl t38"]);
    assert!(l.contains(&"a=rtpmap:0 PCMU/8000"), "{sdp}");
    assert!(l.contains(&"a=ptime:20"), "{sdp}");

    // PCMA only: payload type 8.
    let accept = Accept {
        t38: None,
        laws: vec![G711::Alaw],
    };
    let (_, stream) = answer(DIDWW_AUDIO_AND_T38, LOCAL, 30010, &accept, &mut v).unwrap();
    assert_eq!(audio(&stream).payload_type, 8);
}

#[test]
fn a_refused_audio_line_and_minimal_t38_attributes_take_the_defaults() {
    let mut v = SessionVersion::new();
    let remote = parse(AUDIO_REFUSED_T38_MINIMAL).unwrap();
    assert_eq!(remote.media[0].port, 0);
    // Session-level c= applies to a line without its own.
    assert_eq!(remote.media[0].addr, Some("192.168.2.2".parse().unwrap()));
    assert!(remote.offers_t38());
    assert!(!remote.offers_g711(), "port 0 is no offer");
    let (sdp, stream) = answer(
        AUDIO_REFUSED_T38_MINIMAL,
        LOCAL,
        30012,
        &Accept::default(),
        &mut v,
    )
    .unwrap();
    let s = t38(&stream);
    assert_eq!(s.params.max_bit_rate, 14_400);
    assert_eq!(s.params.ec, UdptlEc::None, "absent T38FaxUdpEC: none");
    assert_eq!(s.params.max_datagram, None);
    assert!(sdp.contains("m=audio 0 RTP/AVP 8 101\r\n"), "{sdp}");
    assert!(!sdp.contains("T38FaxUdpEC"), "{sdp}");

    // Audio only accepted: the only audio line has port 0 → 488.
    let accept = Accept {
        t38: None,
        ..Accept::default()
    };
    let err = answer(AUDIO_REFUSED_T38_MINIMAL, LOCAL, 30012, &accept, &mut v).unwrap_err();
    assert!(matches!(err, SdpError::NotAcceptable(_)), "{err}");
}

#[test]
fn dynamic_payload_types_map_to_g711_by_rtpmap() {
    let mut v = SessionVersion::new();
    let offer = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.7",
        "s=-",
        "c=IN IP4 192.0.2.7",
        "t=0 0",
        "m=audio 5004 RTP/AVP 96 97 0 101",
        "a=rtpmap:96 pcma/8000",
        "a=rtpmap:97 PCMU/8000/1",
        "a=rtpmap:0 G722/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
    ]);
    let remote = parse(&offer).unwrap();
    assert_eq!(
        remote.media[0].kind,
        MediaKind::Audio(vec![
            AudioFormat {
                payload_type: 96,
                law: Some(G711::Alaw)
            },
            AudioFormat {
                payload_type: 97,
                law: Some(G711::Ulaw)
            },
            // The rtpmap says what 0 is, even against RFC 3551.
            AudioFormat {
                payload_type: 0,
                law: None
            },
            AudioFormat {
                payload_type: 101,
                law: None
            },
        ])
    );
    let (sdp, stream) = answer(&offer, LOCAL, 30014, &Accept::default(), &mut v).unwrap();
    let a = audio(&stream);
    assert_eq!((a.law, a.payload_type), (G711::Ulaw, 97));
    assert!(
        sdp.contains("m=audio 30014 RTP/AVP 97\r\na=rtpmap:97 PCMU/8000\r\n"),
        "{sdp}"
    );
}

#[test]
fn ipv6_addresses_in_offers_and_answers() {
    let mut v = SessionVersion::new();
    let ip6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let sdp = offer_t38(ip6, 30016, &T38Params::default(), &mut v);
    assert!(sdp.contains("o=faxmta "), "{sdp}");
    assert!(sdp.contains(" IN IP6 ::1\r\n"), "{sdp}");
    assert!(sdp.contains("c=IN IP6 ::1\r\n"), "{sdp}");
    let remote = crlf(&[
        "v=0",
        "o=- 7 7 IN IP6 2001:db8::1",
        "s=-",
        "t=0 0",
        "m=audio 6000 RTP/AVP 8",
        "c=IN IP6 2001:db8::2",
    ]);
    let (ans, stream) = answer(&remote, ip6, 30016, &Accept::default(), &mut v).unwrap();
    assert_eq!(audio(&stream).remote, "[2001:db8::2]:6000".parse().unwrap());
    assert_eq!(audio(&stream).law, G711::Alaw);
    assert!(ans.contains("c=IN IP6 ::1\r\n"), "{ans}");
}

#[test]
fn t38_attribute_names_and_values_in_any_case_and_fec_only_when_we_do_fec() {
    let mut v = SessionVersion::new();
    let offer = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.9",
        "s=-",
        "c=IN IP4 192.0.2.9",
        "t=0 0",
        "m=image 7000 UDPTL T38",
        "a=t38faxversion:3",
        "a=T38maxBitRate:33600",
        "a=T38FaxRateManagement:LOCALTCF",
        "a=T38FaxUdpEc:T38UDPFEC",
        "a=T38FaxMaxIFP:72",
        "a=T38VendorInfo:0 0 0",
    ]);
    let remote = parse(&offer).unwrap();
    let MediaKind::T38(p) = &remote.media[0].kind else {
        panic!("{remote:?}")
    };
    assert_eq!(p.version, 3);
    assert_eq!(p.max_bit_rate, 33_600);
    assert_eq!(p.rate_management, RateManagement::LocalTcf);
    assert_eq!(p.ec, UdptlEc::Fec);

    // We do redundancy only: FEC is answered as redundancy; version and
    // bit rate come down to ours; rate management is the offer's.
    let (sdp, stream) = answer(&offer, LOCAL, 30018, &Accept::default(), &mut v).unwrap();
    let s = t38(&stream);
    assert_eq!(s.params.ec, UdptlEc::Redundancy);
    assert_eq!(s.params.version, 0);
    assert_eq!(s.params.max_bit_rate, 14_400);
    assert_eq!(s.params.rate_management, RateManagement::LocalTcf);
    assert!(sdp.contains("a=T38FaxUdpEC:t38UDPRedundancy\r\n"), "{sdp}");
    assert!(sdp.contains("a=T38FaxVersion:0\r\n"), "{sdp}");
    assert!(sdp.contains("a=T38FaxRateManagement:localTCF\r\n"), "{sdp}");

    // We do FEC: FEC.
    let accept = Accept {
        t38: Some(T38Params {
            ec: UdptlEc::Fec,
            ..T38Params::default()
        }),
        laws: vec![],
    };
    let (sdp, stream) = answer(&offer, LOCAL, 30018, &accept, &mut v).unwrap();
    assert_eq!(t38(&stream).params.ec, UdptlEc::Fec);
    assert!(sdp.contains("a=T38FaxUdpEC:t38UDPFEC\r\n"), "{sdp}");
}

#[test]
fn nothing_acceptable_is_an_error_for_a_488() {
    let mut v = SessionVersion::new();
    let g729 = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5004 RTP/AVP 18",
        "a=rtpmap:18 G729/8000",
        "m=video 5006 RTP/AVP 31",
    ]);
    let err = answer(&g729, LOCAL, 30020, &Accept::default(), &mut v).unwrap_err();
    assert!(
        matches!(&err, SdpError::NotAcceptable(s) if s.contains("audio 18")),
        "{err}"
    );
    // T.38 only, and we refuse T.38.
    let accept = Accept {
        t38: None,
        ..Accept::default()
    };
    let err = answer(CISCO_T38_REINVITE, LOCAL, 30020, &accept, &mut v).unwrap_err();
    assert!(matches!(err, SdpError::NotAcceptable(_)), "{err}");
    // SRTP audio is not RTP/AVP: not ours.
    let srtp = g729.replace("RTP/AVP 18", "RTP/SAVP 0");
    let err = answer(&srtp, LOCAL, 30020, &Accept::default(), &mut v).unwrap_err();
    assert!(matches!(err, SdpError::NotAcceptable(_)), "{err}");
    // No media at all.
    let none = crlf(&["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0"]);
    let err = answer(&none, LOCAL, 30020, &Accept::default(), &mut v).unwrap_err();
    assert_eq!(err, SdpError::NotAcceptable("no m= line".into()));
}

#[test]
fn answers_to_our_offers_become_streams() {
    let laws = Offered::Audio(vec![G711::Ulaw, G711::Alaw]);
    // rtpengine answered our audio offer with PCMA only.
    let pcma = crlf(&[
        "v=0",
        "o=- 5 6 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        "m=audio 40044 RTP/AVP 8 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=sendrecv",
        "a=rtcp:40045",
        "a=ptime:20",
    ]);
    let s = read_answer(&pcma, &laws).unwrap();
    assert_eq!(
        s,
        Stream::Audio(AudioParams {
            law: G711::Alaw,
            payload_type: 8,
            remote: "127.0.0.1:40044".parse().unwrap()
        })
    );
    // A law we did not offer is no answer.
    let err = read_answer(&pcma, &Offered::Audio(vec![G711::Ulaw])).unwrap_err();
    assert!(matches!(err, SdpError::NotAcceptable(_)), "{err}");
    // Port 0: refused.
    let refused = pcma.replace("m=audio 40044", "m=audio 0");
    assert_eq!(
        read_answer(&refused, &laws).unwrap_err(),
        SdpError::Refused("audio")
    );

    // Our T.38 offer (redundancy, 14400) answered with more than we
    // offered: kept within ours.
    let ours = T38Params::default();
    let answer_sdp = CISCO_T38_REINVITE
        .replace("T38MaxBitRate:7200", "T38MaxBitRate:33600")
        .replace("t38UDPRedundancy", "t38UDPFEC")
        .replace("T38FaxVersion:0", "T38FaxVersion:2");
    let s = read_answer(&answer_sdp, &Offered::T38(ours.clone())).unwrap();
    let s = t38(&s);
    assert_eq!(s.remote, "10.0.0.2:17682".parse().unwrap());
    assert_eq!(s.params.max_bit_rate, 14_400);
    assert_eq!(s.params.ec, UdptlEc::Redundancy);
    assert_eq!(s.params.version, 0);
    assert_eq!(s.params.max_datagram, Some(180), "the far end's limit");
    // A T.38 offer answered with audio (or refused) is no T.38 stream.
    assert_eq!(
        read_answer(&pcma, &Offered::T38(ours.clone())).unwrap_err(),
        SdpError::MissingStream("T.38")
    );
    let refused = CISCO_T38_REINVITE.replace("m=image 17682", "m=image 0");
    assert_eq!(
        read_answer(&refused, &Offered::T38(ours)).unwrap_err(),
        SdpError::Refused("T.38")
    );
}

#[test]
fn our_answer_round_trips_through_read_answer() {
    // What we answer to an offer of ours is what reading it gives.
    let mut a = SessionVersion::new();
    let mut b = SessionVersion::new();
    let ip_b: IpAddr = "127.0.0.10".parse().unwrap();
    let offer = offer_t38(LOCAL, 30022, &T38Params::default(), &mut a);
    let (ans, their_view) = answer(&offer, ip_b, 30024, &Accept::default(), &mut b).unwrap();
    assert_eq!(t38(&their_view).remote, SocketAddr::new(LOCAL, 30022));
    let our_view = read_answer(&ans, &Offered::T38(T38Params::default())).unwrap();
    assert_eq!(
        our_view,
        Stream::T38(T38Stream {
            params: T38Params::default(),
            remote: SocketAddr::new(ip_b, 30024)
        })
    );
    let offer = offer_audio(LOCAL, 30026, &[G711::Alaw, G711::Ulaw], &mut a);
    let (ans, _) = answer(&offer, ip_b, 30028, &Accept::default(), &mut b).unwrap();
    let s = read_answer(&ans, &Offered::Audio(vec![G711::Alaw, G711::Ulaw])).unwrap();
    assert_eq!(audio(&s).law, G711::Ulaw, "the answerer's preference");
    assert_eq!(audio(&s).remote, SocketAddr::new(ip_b, 30028));
}
