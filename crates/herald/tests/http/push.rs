//! SSE and WebSocket push.
