//! RTP for G.711 fax audio: packets of 20 ms (160 samples, payload type 0
//! PCMU or 8 PCMA) built and read with rtp-rs.
