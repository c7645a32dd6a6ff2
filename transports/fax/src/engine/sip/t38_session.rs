//! A fax over T.38: spandsp's T.38 terminal (T.30 over IFP packets) wired
//! to a UDPTL socket, paced every 20 ms, until T.30 ends or the
//! signalling stops it.
