"""anti-passback: gate pairs and each person's state in them

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 11:00:00.000000

A pair names an entry and an exit access point (the same one, used both ways, when its
devices send a direction), a mode (soft: grant and record; hard: deny) and a forgiveness
time; a state row per person and pair says whether the person is inside
(``docs/policy.md``, Anti-passback).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('anti_passback_pairs',
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('entry_point_id', sa.String(length=40), nullable=False),
    sa.Column('exit_point_id', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.Enum('soft', 'hard', name='passbackmode', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('forgive_minutes', sa.Integer(), nullable=True),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('community_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_anti_passback_pairs_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['entry_point_id'], ['access_points.id'], name=op.f('fk_anti_passback_pairs_entry_point_id_access_points'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['exit_point_id'], ['access_points.id'], name=op.f('fk_anti_passback_pairs_exit_point_id_access_points'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_anti_passback_pairs'))
    )
    with op.batch_alter_table('anti_passback_pairs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_anti_passback_pairs_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_anti_passback_pairs_entry_point_id'), ['entry_point_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_anti_passback_pairs_exit_point_id'), ['exit_point_id'], unique=False)

    op.create_table('anti_passback_states',
    sa.Column('pair_id', sa.String(length=40), nullable=False),
    sa.Column('person_id', sa.String(length=40), nullable=False),
    sa.Column('inside', sa.Boolean(), nullable=False),
    sa.Column('entered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('exited_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('violations', sa.Integer(), nullable=False),
    sa.Column('last_violation_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('community_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_anti_passback_states_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pair_id'], ['anti_passback_pairs.id'], name=op.f('fk_anti_passback_states_pair_id_anti_passback_pairs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_anti_passback_states_person_id_people'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_anti_passback_states')),
    sa.UniqueConstraint('pair_id', 'person_id', name=op.f('uq_anti_passback_states_pair_id_person_id'))
    )
    with op.batch_alter_table('anti_passback_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_anti_passback_states_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_anti_passback_states_person_id'), ['person_id'], unique=False)


def downgrade():
    with op.batch_alter_table('anti_passback_states', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_anti_passback_states_person_id'))
        batch_op.drop_index(batch_op.f('ix_anti_passback_states_community_id'))
    op.drop_table('anti_passback_states')
    with op.batch_alter_table('anti_passback_pairs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_anti_passback_pairs_exit_point_id'))
        batch_op.drop_index(batch_op.f('ix_anti_passback_pairs_entry_point_id'))
        batch_op.drop_index(batch_op.f('ix_anti_passback_pairs_community_id'))
    op.drop_table('anti_passback_pairs')
