"""The wire: what crosses a socket and how it is checked.

`codec` (msgpack with ext types for Decimal, datetime, UUID, sets, tuples; byte layouts in
`ext_types`), `envelope` (request and reply bodies), `validation` (type forms compiled
into checkers). Below connections and states, above the transport, which moves only bytes.
"""
