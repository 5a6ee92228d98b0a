from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WalletConfig(AppConfig):
    name = "wallet"
    verbose_name = _("Wallet")

    def ready(self) -> None:
        from ledger import labels

        from .models import PaymentMethod
        from .services.expiry import EXPIRY_MEMOS, LEGACY_EXPIRY_MEMOS

        # Cash accounts are kept per payment method (their detail); operation types wallet.services post.
        labels.register_details("cash", dict(PaymentMethod.choices))
        labels.register_operations(
            {
                "recharge": _("Recharge"),
                "consumption": _("Consumption"),
                "consumption_refund": _("Entitlement refund"),
                "cash_refund": _("Cash refund"),
                "expiry": _("Expiry"),
                "coupon_issue": _("Coupon issuance"),
                "voucher_issue": _("Voucher issuance"),
                "points_award": _("Points award"),
            }
        )
        labels.register_memos({**EXPIRY_MEMOS, **LEGACY_EXPIRY_MEMOS})
