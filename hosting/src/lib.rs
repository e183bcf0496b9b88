//! What a service needs from the box it runs on, shared by core and the
//! edge: object storage named by a URL ([`objects`]) and HTTPS served from
//! a certificate and key ([`tls`]).

pub mod objects;
pub mod tls;
