"""Skills: ESCO skill extraction from postings, SkillRank (job2vec / skill2vec) and the
skills–occupation knowledge graph. See ``autocoder skills --help``."""
