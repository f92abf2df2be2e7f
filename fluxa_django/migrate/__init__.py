"""Schema management: compare entity definitions with live servers and alter them."""

from fluxa_django.migrate.mysql import Alter, MigrationPlan, apply_alters, plan_mysql

__all__ = ["Alter", "MigrationPlan", "apply_alters", "plan_mysql"]
