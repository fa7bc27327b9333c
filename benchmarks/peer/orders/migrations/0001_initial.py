from typing import ClassVar

from django.db import migrations, models


def _fields() -> list[tuple[str, models.Field]]:
    return [
        (
            "id",
            models.BigAutoField(
                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
            ),
        ),
        ("event_id", models.CharField(max_length=40, unique=True)),
        ("data", models.JSONField()),
    ]


class Migration(migrations.Migration):
    initial = True
    dependencies: ClassVar[list[tuple[str, str]]] = []
    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.CreateModel(name="Order", fields=_fields()),
        migrations.CreateModel(name="FanoutOrder", fields=_fields()),
    ]
