"""Earth geometry for geolocation: distances, S2 cells and adaptive cell partitions."""
