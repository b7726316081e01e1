//! The session room (issues 16 and 17): the pre-call check, the room's WebSocket (signaling
//! and room events), the clerk's admission, identity check and documents. Live updates come
//! from `workers::live`, the feed the clerk's SSE stream uses, and from the room hub, which
//! tells a session's sockets at once what the other side did.

// Its first users, the room pages and socket, follow in the next commits.
#[allow(dead_code)]
pub(crate) mod access;
