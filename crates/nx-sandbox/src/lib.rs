//! A strict local emulator of NXCloud's WhatsApp media API and the WhatsApp On-Premises media API,
//! for trying the SDK without credentials and for testing it without a network.
#![forbid(unsafe_code)]
