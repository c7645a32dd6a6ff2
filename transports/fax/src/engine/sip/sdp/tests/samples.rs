//! Remote SDP bodies as real products write them, each with its source.

/// rtpengine 10.5's `T.38=force` offer, as the SIPp UAS of
/// tests/sip_peers.rs received it (through Kamailio, from a SIPp audio
/// offer): the offerer's o=/s=/t=, rtpengine's own c= and port.
pub(super) const RTPENGINE_T38_OFFER: &str = "v=0\r\n\
o=sipp 1 1 IN IP4 127.0.0.3\r\n\
s=sipp\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=image 31200 udptl t38\r\n\
a=T38FaxVersion:0\r\n\
a=T38MaxBitRate:14400\r\n\
a=T38FaxRateManagement:transferredTCF\r\n\
a=T38FaxMaxBuffer:1800\r\n\
a=T38FaxMaxDatagram:512\r\n\
a=T38FaxUdpEC:t38UDPRedundancy\r\n";

/// A Cisco IOS gateway's T.38 switchover re-INVITE (Cisco's "Configure
/// CUBE T.38" troubleshooting page, as mirrored at
/// mcdewey.supported.systems/c/voice-quality::troubleshooting::configure-cube-t38):
/// the booleans written with `:0`.
pub(super) const CISCO_T38_REINVITE: &str = "v=0\r\n\
o=CiscoSystemsSIP-GW-UserAgent 3745 9509 IN IP4 10.0.0.2\r\n\
s=SIP Call\r\n\
c=IN IP4 10.0.0.2\r\n\
t=0 0\r\n\
m=image 17682 udptl t38\r\n\
c=IN IP4 10.0.0.2\r\n\
a=T38FaxVersion:0\r\n\
a=T38MaxBitRate:7200\r\n\
a=T38FaxFillBitRemoval:0\r\n\
a=T38FaxTranscodingMMR:0\r\n\
a=T38FaxTranscodingJBIG:0\r\n\
a=T38FaxRateManagement:transferredTCF\r\n\
a=T38FaxMaxBuffer:200\r\n\
a=T38FaxMaxDatagram:180\r\n\
a=T38FaxUdpEC:t38UDPRedundancy\r\n";

/// A carrier SBC's initial INVITE offering audio and T.38 at once
/// (DIDWW SBC, in FreeSWITCH issue #1297,
/// https://github.com/signalwire/freeswitch/issues/1297): media-level c=,
/// G.729/G.723/telephone-event beside G.711, unknown `a=direction:both`.
pub(super) const DIDWW_AUDIO_AND_T38: &str = "v=0\r\n\
o=- 1869739744 1869739744 IN IP4 46.19.209.78\r\n\
s=-\r\n\
t=0 0\r\n\
m=audio 13960 RTP/AVP 0 8 18 4 101\r\n\
c=IN IP4 46.19.209.78\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:4 G723/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendrecv\r\n\
a=ptime:20\r\n\
a=direction:both\r\n\
m=image 13962 udptl t38\r\n\
c=IN IP4 46.19.209.78\r\n\
a=sendrecv\r\n\
a=T38FaxMaxDatagram:612\r\n\
a=T38FaxRateManagement:transferredTCF\r\n\
a=T38FaxUdpEC:t38UDPRedundancy\r\n\
a=T38FaxVersion:0\r\n\
a=T38MaxBitRate:14400\r\n\
a=direction:both\r\n";

/// A phone's T.38 re-INVITE through OpenSIPS (rtpengine issue #1201,
/// https://github.com/sipwise/rtpengine/issues/1201): fill-bit removal by
/// presence, LF line ends as pasted there.
pub(super) const OPENSIPS_T38_REINVITE: &str = "v=0
o=name 1614699264 1614699267 IN IP4 192.168.171.230
s=name
c=IN IP4 192.168.171.230
t=0 0
m=image 20334 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxFillBitRemoval
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:2000
a=T38FaxMaxDatagram:400
a=T38FaxUdpEC:t38UDPRedundancy
";

/// A T.38 re-INVITE that refuses the audio stream by port 0 and states
/// only two T.38 attributes (rtpengine issue #686,
/// https://github.com/sipwise/rtpengine/issues/686).
pub(super) const AUDIO_REFUSED_T38_MINIMAL: &str = "v=0\r\n\
o=UserA 3272146361 4237707437 IN IP4 192.168.2.2\r\n\
s=Session SDP\r\n\
c=IN IP4 192.168.2.2\r\n\
t=0 0\r\n\
m=audio 0 RTP/AVP 8 101\r\n\
m=image 49158 udptl t38\r\n\
c=IN IP4 192.168.2.2\r\n\
a=T38FaxVersion:0\r\n\
a=T38FaxRateManagement:transferredTCF\r\n";
