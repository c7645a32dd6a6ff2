//! A fax over G.711: spandsp's audio fax terminal (V.21/V.27ter/V.29/V.17
//! modems + T.30) wired to an RTP socket through the jitter buffer, paced
//! every 20 ms, until T.30 ends or the signalling stops it (hang-up, or a
//! switch to T.38 by re-INVITE).
