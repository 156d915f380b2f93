"""Occupation taxonomies: one typed model for O*NET-SOC and ESCO/ISCO-08."""

from autocoder.taxonomy.model import Code, SkillLink, Taxonomy

__all__ = ["Code", "SkillLink", "Taxonomy"]
