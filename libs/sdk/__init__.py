"""What a receiver of hookpost webhooks uses: verify a signature, parse an event, and
`hookpost listen`."""
