from spp_gateway.models import Base
from spp_shared.kit.alembic_env import run

run(Base.metadata)
