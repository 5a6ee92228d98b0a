"""factory_boy factories for the domain. Owners and staff go through the services, as in production."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from members import services
from members.models import Building, Estate, Level, Merchant, Owner, Room, Staff, Store


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    code = factory.Sequence(lambda n: f"m{n}")
    name = factory.Sequence(lambda n: f"商户{n}")
    kind = Merchant.Kind.PROPERTY


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store

    merchant = factory.SubFactory(MerchantFactory)
    code = factory.Sequence(lambda n: f"s{n}")
    name = factory.Sequence(lambda n: f"门店{n}")


class EstateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Estate

    merchant = factory.SubFactory(MerchantFactory)
    name = factory.Sequence(lambda n: f"小区{n}")


class BuildingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Building

    estate = factory.SubFactory(EstateFactory)
    name = factory.Sequence(lambda n: f"{n}栋")


class RoomFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Room

    building = factory.SubFactory(BuildingFactory)
    number = factory.Sequence(lambda n: f"{n:04d}")


class LevelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Level

    merchant = factory.SubFactory(MerchantFactory)
    name = factory.Sequence(lambda n: f"等级{n}")
    rank = factory.Sequence(lambda n: n)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-12345678")


_mobile_counter = iter(range(10**6, 10**7))


def next_mobile() -> str:
    return f"1380{next(_mobile_counter):07d}"


def make_owner(merchant: Merchant | None = None, *, actor=None, **kwargs) -> Owner:
    merchant = merchant or MerchantFactory()
    kwargs.setdefault("name", "测试业主")
    kwargs.setdefault("mobile", next_mobile())
    return services.register_owner(merchant=merchant, actor=actor, **kwargs)


_username_counter = iter(range(10**6))


def make_staff(merchant: Merchant, role: str, stores=(), **kwargs) -> Staff:
    kwargs.setdefault("username", f"staff{next(_username_counter)}")
    kwargs.setdefault("name", "员工")
    kwargs.setdefault("password", "pw-12345678")
    return services.create_staff(merchant=merchant, role=role, stores=stores, actor=None, **kwargs)
