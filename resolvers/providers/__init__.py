"""Provider resolvers: profiles, geosearch and verification (``provider``), ranked discovery
(``discovery``), onboarding applications (``onboarding``) and standing under the two-strike policy
(``standing``); domain/providers/."""
