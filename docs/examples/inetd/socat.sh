#!/bin/sh
# Ad-hoc inetd with socat (what test/stdio.test.ts runs): one popspool per connection.
# socat passes SOCAT_PEERADDR, which popspool uses as the client address.
exec socat TCP-LISTEN:1110,bind=127.0.0.1,reuseaddr,fork \
  EXEC:'/usr/bin/popspool serve --stdio --config /etc/popspool/popspool.toml'
