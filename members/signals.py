"""Signals members sends for the apps above it (which members must not import: imports point portal → flows →
wallet → ledger → members).

`store_roles_revoked`: a staff member lost permissions on stores (a store's roles revoked, their stores changed,
their role changed, offboarding). Sent inside the change's transaction, after the object permissions are gone,
with `staff`, `store_ids` (the stores whose permissions changed), `actor` and `reason`; a receiver that fails
undoes the change. The flows return the tasks the staff member claimed there and may no longer decide.
"""

from django.dispatch import Signal

store_roles_revoked = Signal()
