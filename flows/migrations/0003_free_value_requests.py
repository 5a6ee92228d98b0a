"""Free value beyond the limit (issue 12): FreeValueRequest, its process proxy, and its task kind for deadlines."""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
import django_fsm
from django.conf import settings
from django.db import migrations, models

from core.migration_operations import AlterLabels


class Migration(migrations.Migration):

    dependencies = [
        ('flows', '0002_task_queue_indexes'),
        ('members', '0007_free_value_read_permissions'),
        ('viewflow', '0015_task_scheduled'),
        ('wallet', '0008_confirm_above_in_yuan'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='FreeValueProcess',
            fields=[
            ],
            options={
                'verbose_name': 'free value process',
                'verbose_name_plural': 'free value processes',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('flows.requestprocess',),
        ),
        AlterLabels(
            model_name='taskdeadline',
            name='task',
            field=models.CharField(choices=[('refund.review', 'Refund: store manager review'), ('refund.finance_review', 'Refund: finance review'), ('member_change.review', 'Member change: review'), ('onboarding.review', 'Staff onboarding: manager approval'), ('offboarding.review', 'Staff offboarding: approval'), ('free_value.review', 'Free value over the limit: merchant admin approval')], max_length=40, verbose_name='task'),
        ),
        migrations.CreateModel(
            name='FreeValueRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.CharField(editable=False, max_length=24, verbose_name='number')),
                ('state', django_fsm.FSMField(choices=[('submitted', 'Awaiting review'), ('finance_review', 'Awaiting finance review'), ('approved', 'Approved, being carried out'), ('executed', 'Done'), ('awaiting_activation', 'Awaiting activation'), ('active', 'Active'), ('failed', 'Failed'), ('rejected', 'Rejected'), ('withdrawn', 'Withdrawn')], default='submitted', max_length=24, protected=True, verbose_name='state')),
                ('requested_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='requested at')),
                ('reason', models.CharField(max_length=200, verbose_name='reason')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated at')),
                ('kind', models.CharField(choices=[('recharge', 'Recharge with bonus or discount over the limit'), ('voucher', 'Free voucher'), ('coupon', 'Free coupon'), ('points', 'Points award')], max_length=16, verbose_name='kind')),
                ('line_kind', models.CharField(blank=True, choices=[('stored_value', 'Stored value'), ('plan', 'Recharge plan'), ('coupon', 'Coupon'), ('package', 'Entitlement package'), ('voucher', 'Voucher'), ('vip', 'VIP card')], max_length=16, verbose_name='line')),
                ('quantity', models.PositiveIntegerField(default=1, verbose_name='quantity')),
                ('amount_fen', models.BigIntegerField(default=0, validators=[django.core.validators.MinValueValidator(0)], verbose_name='stored value per unit (fen)')),
                ('bonus_fen', models.BigIntegerField(default=0, validators=[django.core.validators.MinValueValidator(0)], verbose_name='bonus per unit (fen)')),
                ('discount_bp', models.PositiveIntegerField(default=10000, verbose_name='discount (basis points paid)')),
                ('payment_method', models.CharField(blank=True, choices=[('cash', 'Cash'), ('wechat', 'WeChat Pay'), ('alipay', 'Alipay'), ('unionpay', 'UnionPay card'), ('bank_transfer', 'Bank transfer')], max_length=16, verbose_name='payment method')),
                ('note', models.CharField(blank=True, max_length=200, verbose_name='note')),
                ('paid_fen', models.BigIntegerField(default=0, validators=[django.core.validators.MinValueValidator(0)], verbose_name='paid (fen)')),
                ('value_fen', models.BigIntegerField(default=0, validators=[django.core.validators.MinValueValidator(0)], verbose_name='free value (fen)')),
                ('points', models.PositiveIntegerField(default=0, verbose_name='points')),
                ('form_token', models.CharField(blank=True, editable=False, max_length=36)),
                ('entry_id', models.BigIntegerField(blank=True, editable=False, null=True)),
                ('failure_code', models.CharField(blank=True, editable=False, max_length=64)),
                ('failure_message', models.CharField(blank=True, editable=False, max_length=500)),
                ('coupon_template', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='wallet.coupontemplate', verbose_name='coupon')),
                ('member', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='members.owner', verbose_name='member')),
                ('merchant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='members.merchant')),
                ('package', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='wallet.entitlementpackage', verbose_name='entitlement package')),
                ('points_rule', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='wallet.activitypointsrule', verbose_name='activity points rule')),
                ('process', models.OneToOneField(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='viewflow.process')),
                ('recharge', models.OneToOneField(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='wallet.recharge')),
                ('requested_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='requested by')),
                ('store', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='members.store', verbose_name='store')),
                ('vip_type', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='wallet.vipcardtype', verbose_name='VIP card')),
                ('voucher', models.OneToOneField(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='wallet.voucher')),
                ('voucher_template', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='wallet.vouchertemplate', verbose_name='voucher')),
            ],
            options={
                'verbose_name': 'free value request',
                'verbose_name_plural': 'free value requests',
                'ordering': ['-requested_at', '-id'],
                'abstract': False,
                'indexes': [models.Index(fields=['merchant', 'state', 'store'], name='free_value_queue_idx')],
                'constraints': [models.UniqueConstraint(fields=('merchant', 'number'), name='free_value_number_unique'), models.UniqueConstraint(condition=models.Q(('form_token', ''), _negated=True), fields=('merchant', 'requested_by', 'form_token'), name='free_value_form_token_unique')],
            },
            bases=(django_fsm.ConcurrentTransitionMixin, models.Model),
        ),
    ]
