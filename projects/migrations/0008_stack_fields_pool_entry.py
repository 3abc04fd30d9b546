# The stack name and folder of a project become fields (a project may adopt a warm pool
# entry's), and the warm pool itself. Existing rows get what was derived from the id before.

import doce.crypto
import projects.models
from django.db import migrations, models


def fill_stack_fields(apps, schema_editor):
    Project = apps.get_model("projects", "Project")
    for project_id in Project.objects.values_list("id", flat=True).iterator():
        Project.objects.filter(pk=project_id).update(
            stack_name=project_id, directory=f"projects/{project_id}"
        )


class Migration(migrations.Migration):

    dependencies = [
        ('projects', '0007_project_name_from_user'),
    ]

    operations = [
        migrations.AddField(
            model_name='project',
            name='stack_name',
            field=models.CharField(default='', editable=False, max_length=16),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='project',
            name='directory',
            field=models.CharField(default='', editable=False, max_length=200),
            preserve_default=False,
        ),
        migrations.RunPython(fill_stack_fields, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name='project',
            name='stack_name',
            field=models.CharField(editable=False, max_length=16, unique=True),
        ),
        migrations.AlterField(
            model_name='project',
            name='directory',
            field=models.CharField(editable=False, max_length=200, unique=True),
        ),
        migrations.CreateModel(
            name='PoolEntry',
            fields=[
                ('stack_name', models.CharField(editable=False, max_length=16, unique=True)),
                ('directory', models.CharField(editable=False, max_length=200, unique=True)),
                ('preview_port', models.PositiveIntegerField(blank=True, null=True, unique=True)),
                ('agent_port', models.PositiveIntegerField(blank=True, null=True, unique=True)),
                ('agent_password', doce.crypto.EncryptedTextField(blank=True, default='')),
                ('id', models.CharField(default=projects.models.new_project_id, editable=False, max_length=16, primary_key=True, serialize=False)),
                ('state', models.CharField(choices=[('starting', 'Starting'), ('ready', 'Ready'), ('discarding', 'Discarding')], default='starting', max_length=16)),
                ('fingerprint', models.CharField(max_length=64)),
                ('job_id', models.BigIntegerField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('ready_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'verbose_name': 'warm pool entry',
                'verbose_name_plural': 'warm pool',
                'ordering': ['created_at'],
            },
        ),
    ]
