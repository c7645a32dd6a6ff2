//! The jitter buffer of the audio path: received RTP frames are held a
//! fixed depth, put back in order, and a missing frame is reported as a
//! gap (fed to the modem as fill-in) rather than waited for.
