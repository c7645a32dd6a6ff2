//! UDPTL (ITU-T T.38 §9.1 and Annex A): the packet that carries T.38 IFP
//! packets over UDP — a sequence number, the primary IFP and either
//! redundant copies of earlier IFPs or FEC parity — encoded in ASN.1 PER
//! (aligned); and the receive side that puts IFPs back in order and
//! recovers lost ones from the redundancy or FEC of later packets.
