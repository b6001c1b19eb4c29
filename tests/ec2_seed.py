"""EC2 seeding shared by the cleaner and cleanup tests: volumes and instances with tags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """EC2's Tags list from a dict."""
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def create_volume(
    ec2: Any, zone: str, size: int, vtype: str, tags: Mapping[str, str] | None, **extra: Any
) -> str:
    """A new unattached volume's id."""
    specs = [{"ResourceType": "volume", "Tags": tag_list(tags)}] if tags else []
    made = ec2.create_volume(
        AvailabilityZone=zone, Size=size, VolumeType=vtype, TagSpecifications=specs, **extra
    )
    return str(made["VolumeId"])


def launch(ec2: Any, zone: str, instance_type: str, tags: Mapping[str, str] | None) -> str:
    """A new running instance's id."""
    specs = [{"ResourceType": "instance", "Tags": tag_list(tags)}] if tags else []
    made = ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        Placement={"AvailabilityZone": zone},
        TagSpecifications=specs,
    )
    return str(made["Instances"][0]["InstanceId"])
