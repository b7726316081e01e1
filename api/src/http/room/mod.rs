//! The session room (issues 16 and 17): pre-call check, admission, signaling over the room's
//! WebSocket, documents, forms, signatures and payment. Empty until then; its live updates
//! will come from `workers::live`, the feed the clerk's SSE stream already uses.
