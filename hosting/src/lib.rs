//! What a service needs from the box it runs on, shared by core and the
//! edge: object storage named by a URL ([`objects`]), recordings sealed to
//! their tenant in it ([`sealed`]) and HTTPS served from a certificate and
//! key ([`tls`]).

pub mod objects;
pub mod sealed;
pub mod tls;
