//! G.711 µ-law and A-law through spandsp's codec (`g711_encode`,
//! `g711_decode`): the samples of the audio fax terminal to and from the
//! octets of an RTP payload (PCMU, PCMA).

use super::ffi;
use std::ffi::c_int;
use std::ptr::NonNull;

/// Which law a [`Codec`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// µ-law (PCMU).
    Ulaw,
    /// A-law (PCMA).
    Alaw,
}

/// spandsp could not make a G.711 context.
#[derive(Debug, thiserror::Error)]
#[error("spandsp could not create a G.711 context (g711_init returned NULL)")]
pub struct InitError;

/// A G.711 encoder and decoder (stateless in effect: G.711 has no memory,
/// but spandsp wants a context). Owns its `g711_state_t`.
pub struct Codec {
    state: NonNull<ffi::g711_state_t>,
    law: Law,
}

impl Codec {
    pub fn new(law: Law) -> Result<Codec, InitError> {
        let mode = match law {
            Law::Alaw => ffi::G711_ALAW,
            Law::Ulaw => ffi::G711_ULAW,
        };
        // SAFETY: g711_init(NULL, mode) allocates a new context or
        // returns NULL.
        let raw = unsafe { ffi::g711_init(std::ptr::null_mut(), mode) };
        NonNull::new(raw)
            .map(|state| Codec { state, law })
            .ok_or(InitError)
    }

    pub fn law(&self) -> Law {
        self.law
    }

    /// The octet of silence (linear 0) in this law: 0xFF µ-law, 0xD5
    /// A-law.
    pub fn silence(&self) -> u8 {
        match self.law {
            Law::Ulaw => 0xFF,
            Law::Alaw => 0xD5,
        }
    }

    /// Encodes `samples` into `out`; returns the octets written
    /// (`min(samples.len(), out.len())`).
    pub fn encode(&mut self, samples: &[i16], out: &mut [u8]) -> usize {
        let n = samples.len().min(out.len()).min(c_int::MAX as usize);
        // SAFETY: the context is live; both buffers hold at least `n`
        // elements and g711_encode reads/writes exactly `n`.
        let done = unsafe {
            ffi::g711_encode(
                self.state.as_ptr(),
                out.as_mut_ptr(),
                samples.as_ptr(),
                n as c_int,
            )
        };
        usize::try_from(done).unwrap_or(0).min(n)
    }

    /// Decodes `octets` into `out`; returns the samples written
    /// (`min(octets.len(), out.len())`).
    pub fn decode(&mut self, octets: &[u8], out: &mut [i16]) -> usize {
        let n = octets.len().min(out.len()).min(c_int::MAX as usize);
        // SAFETY: as in encode.
        let done = unsafe {
            ffi::g711_decode(
                self.state.as_ptr(),
                out.as_mut_ptr(),
                octets.as_ptr(),
                n as c_int,
            )
        };
        usize::try_from(done).unwrap_or(0).min(n)
    }
}

impl Drop for Codec {
    fn drop(&mut self) {
        // SAFETY: the context came from g711_init and is freed once, here.
        unsafe { ffi::g711_free(self.state.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_one(law: Law, octet: u8) -> i16 {
        let mut c = Codec::new(law).unwrap();
        let mut out = [0i16; 1];
        assert_eq!(c.decode(&[octet], &mut out), 1);
        out[0]
    }

    fn encode_one(law: Law, sample: i16) -> u8 {
        let mut c = Codec::new(law).unwrap();
        let mut out = [0u8; 1];
        assert_eq!(c.encode(&[sample], &mut out), 1);
        out[0]
    }

    #[test]
    fn g711_known_values_of_both_laws() {
        // G.711's tables: µ-law 0x80/0x00 are the extremes, 0xFF zero;
        // A-law 0xD5/0x55 are ±8 (no zero), 0xAA/0x2A the extremes.
        assert_eq!(decode_one(Law::Ulaw, 0x80), 32124);
        assert_eq!(decode_one(Law::Ulaw, 0x00), -32124);
        assert_eq!(decode_one(Law::Ulaw, 0xFF), 0);
        assert_eq!(decode_one(Law::Alaw, 0xD5), 8);
        assert_eq!(decode_one(Law::Alaw, 0x55), -8);
        assert_eq!(decode_one(Law::Alaw, 0xAA), 32256);
        assert_eq!(decode_one(Law::Alaw, 0x2A), -32256);
        for law in [Law::Ulaw, Law::Alaw] {
            let c = Codec::new(law).unwrap();
            assert_eq!(encode_one(law, 0), c.silence(), "{law:?}");
        }
    }

    #[test]
    fn g711_round_trip_is_within_the_quantisation_step() {
        for law in [Law::Ulaw, Law::Alaw] {
            let mut c = Codec::new(law).unwrap();
            assert_eq!(c.law(), law);
            // A 1 kHz tone at -6 dBm0-ish, 160 samples.
            let tone: Vec<i16> = (0..160)
                .map(|i| (12000.0 * (i as f64 * std::f64::consts::TAU / 8.0).sin()) as i16)
                .collect();
            let mut octets = [0u8; 160];
            assert_eq!(c.encode(&tone, &mut octets), 160);
            let mut back = [0i16; 160];
            assert_eq!(c.decode(&octets, &mut back), 160);
            for (a, b) in tone.iter().zip(&back) {
                // Logarithmic: the error grows with the amplitude, at
                // most 1/32 of it (plus the smallest step).
                let err = (i32::from(*a) - i32::from(*b)).abs();
                assert!(
                    err <= i32::from(a.unsigned_abs()) / 32 + 16,
                    "{law:?}: {a} -> {b}"
                );
            }
            // Short buffers: only what fits.
            assert_eq!(c.encode(&tone, &mut octets[..10]), 10);
            assert_eq!(c.decode(&octets[..5], &mut back), 5);
        }
    }
}
