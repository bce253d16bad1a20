using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Domain.Shares;

namespace Orchestrator.Domain.Tests;

public class EntitlementTests
{
    private const long None = long.MaxValue;

    private static CpuClaim Vm(string id, long shares = 1000, long reservation = 0, long limit = None, long demand = 1000) =>
        new(id, shares, reservation, limit, demand);

    private static long[] Divide(long capacity, params CpuClaim[] claims)
    {
        var result = Entitlements.Divide(capacity, claims);
        return claims.Select(c => result[c.Id]).ToArray();
    }

    [Fact]
    public void Busy_vms_split_the_cpu_by_shares()
    {
        Assert.Equal([500, 250, 250], Divide(1000, Vm("a", shares: 2048), Vm("b", shares: 1024), Vm("c", shares: 1024)));
    }

    [Fact]
    public void A_reservation_is_met_first_and_the_rest_is_shared()
    {
        Assert.Equal([600, 200, 200], Divide(1000, Vm("a", reservation: 600), Vm("b"), Vm("c")));
    }

    [Fact]
    public void A_reservation_below_the_fair_share_changes_nothing()
    {
        Assert.Equal([500, 250, 250], Divide(1000, Vm("a", shares: 2048, reservation: 100), Vm("b", shares: 1024), Vm("c", shares: 1024)));
    }

    [Fact]
    public void A_limit_caps_the_vm_and_the_rest_is_shared()
    {
        Assert.Equal([100, 450, 450], Divide(1000, Vm("a", limit: 100), Vm("b"), Vm("c")));
    }

    [Fact]
    public void An_idle_vms_share_goes_to_the_busy_ones()
    {
        Assert.Equal([0, 500, 500], Divide(1000, Vm("idle", demand: 0), Vm("b"), Vm("c")));
        Assert.Equal([100, 450, 450], Divide(1000, Vm("light", demand: 100), Vm("b"), Vm("c")));
    }

    [Fact]
    public void An_idle_vm_keeps_nothing_of_its_reservation()
    {
        Assert.Equal([0, 500, 500], Divide(1000, Vm("idle", reservation: 800, demand: 0), Vm("b"), Vm("c")));
    }

    [Fact]
    public void Capacity_nobody_wants_stays_unused()
    {
        Assert.Equal([300, 200], Divide(4000, Vm("a", demand: 300), Vm("b", limit: 200, demand: 4000)));
    }

    [Fact]
    public void Over_admitted_reservations_are_scaled_down_in_proportion()
    {
        Assert.Equal([450, 150, 0], Divide(600, Vm("a", reservation: 900), Vm("b", reservation: 300), Vm("c")));
    }

    [Fact]
    public void Leftover_millicores_go_to_the_largest_remainders_then_the_ordinal_ids()
    {
        Assert.Equal([333, 334, 333], Divide(1000, Vm("c"), Vm("a"), Vm("b")));
        Assert.Equal([667, 333], Divide(1000, Vm("b", shares: 2), Vm("a", shares: 1)));
    }

    [Fact]
    public void No_claims_get_an_empty_division()
    {
        Assert.Empty(Entitlements.Divide(1000, []));
        Assert.Empty(Entitlements.DivideInPools(1000, []));
    }

    [Fact]
    public void The_largest_inputs_do_not_overflow()
    {
        var claims = Enumerable.Range(0, 300)
            .Select(i => Vm($"vm{i:D3}", shares: i % 2 == 0 ? 262144 : 1, reservation: 10_000, limit: None, demand: 10_000_000))
            .ToArray();
        var result = Divide(10_000_000, claims);
        Assert.Equal(10_000_000, result.Sum());
        Assert.All(result, e => Assert.InRange(e, 10_000, 10_000_000));
    }

    [Theory]
    [InlineData(0, 0, 0, 0, "shares 0")]
    [InlineData(-5, 0, 0, 0, "shares -5")]
    [InlineData(1, -1, 0, 0, "negative reservation")]
    [InlineData(1, 0, -1, 0, "negative limit")]
    [InlineData(1, 0, 0, -1, "negative demand")]
    public void An_invalid_claim_is_refused_by_id(long shares, long reservation, long limit, long demand, string problem)
    {
        var error = Assert.Throws<ArgumentException>(() => Entitlements.Divide(1000, [Vm("ok"), new CpuClaim("bad", shares, reservation, limit, demand)]));
        Assert.Contains("'bad'", error.Message);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void Duplicate_ids_and_negative_capacity_are_refused()
    {
        Assert.Contains("'a'", Assert.Throws<ArgumentException>(() => Entitlements.Divide(1000, [Vm("a"), Vm("a")])).Message);
        Assert.Throws<ArgumentException>(() => Entitlements.Divide(-1, [Vm("a")]));
        Assert.Contains("'x'", Assert.Throws<ArgumentException>(() => Entitlements.DivideInPools(1000,
            [new PoolClaim("p", null, 0, null, [Vm("x")]), new PoolClaim("q", null, 0, null, [Vm("x")])])).Message);
        Assert.Contains("'p'", Assert.Throws<ArgumentException>(() => Entitlements.DivideInPools(1000,
            [new PoolClaim("p", 0, 0, null, [Vm("x")])])).Message);
    }

    [Fact]
    public void Two_tenants_with_equal_pool_shares_get_half_each_whatever_their_vm_count()
    {
        var result = Entitlements.DivideInPools(4000,
        [
            new PoolClaim("many", 1000, 0, null, [Vm("m1", demand: 4000), Vm("m2", demand: 4000), Vm("m3", demand: 4000)]),
            new PoolClaim("one", 1000, 0, null, [Vm("single", demand: 4000)]),
        ]);
        Assert.Equal(2000, result["single"]);
        Assert.Equal([667, 667, 666], new[] { result["m1"], result["m2"], result["m3"] });
    }

    [Fact]
    public void A_pool_without_shares_weighs_as_much_as_its_vms()
    {
        var result = Entitlements.DivideInPools(4000,
        [
            new PoolClaim("many", null, 0, null, [Vm("m1", demand: 4000), Vm("m2", demand: 4000), Vm("m3", demand: 4000)]),
            new PoolClaim("one", null, 0, null, [Vm("single", demand: 4000)]),
        ]);
        Assert.Equal([1000, 1000, 1000, 1000], new[] { result["m1"], result["m2"], result["m3"], result["single"] });
    }

    [Fact]
    public void A_pool_limit_caps_the_tenant_and_its_reservation_is_met()
    {
        var result = Entitlements.DivideInPools(4000,
        [
            new PoolClaim("capped", 1000, 0, 1000, [Vm("c1", demand: 4000), Vm("c2", demand: 4000)]),
            new PoolClaim("reserved", 1, 3000, null, [Vm("r1", demand: 4000), Vm("r2", demand: 4000)]),
            new PoolClaim("empty", 1000, 500, null, []),
        ]);
        Assert.Equal(4, result.Count);
        Assert.Equal([500, 500, 1500, 1500], new[] { result["c1"], result["c2"], result["r1"], result["r2"] });
    }

    // Generators: a few common share values so that ties are frequent, plus the extremes; limits often absent;
    // capacities sometimes below the reservations (over-admitted), sometimes above all demand.
    private static readonly Gen<long> SharesGen = Gen.Frequency(
        (3, Gen.Elements(500L, 1000L, 1000L, 2000L)),
        (1, Gen.Choose(1, 262144).Select(s => (long)s)),
        (1, Gen.Elements(1L, 262144L)));

    private static readonly Gen<long> ReservationGen = Gen.Frequency(
        (2, Gen.Constant(0L)), (2, Gen.Choose(0, 4000).Select(r => (long)r)));

    private static readonly Gen<long> LimitGen = Gen.Frequency(
        (2, Gen.Constant(None)), (2, Gen.Choose(0, 8000).Select(l => (long)l)));

    private static readonly Gen<long> DemandGen = Gen.Frequency(
        (1, Gen.Constant(0L)), (4, Gen.Choose(0, 8000).Select(d => (long)d)), (1, Gen.Constant(10_000_000L)));

    private static readonly Gen<long> CapacityGen = Gen.Frequency(
        (1, Gen.Constant(0L)), (4, Gen.Choose(0, 64_000).Select(c => (long)c)), (1, Gen.Choose(0, 10_000_000).Select(c => (long)c)));

    private static Gen<CpuClaim> ClaimGen(string id) =>
        from shares in SharesGen
        from reservation in ReservationGen
        from limit in LimitGen
        from demand in DemandGen
        select new CpuClaim(id, shares, reservation, limit, demand);

    private static Gen<CpuClaim[]> ClaimsGen(string prefix, int most) =>
        from count in Gen.Choose(0, most)
        from claims in Gen.CollectToArray(Enumerable.Range(0, count), i => ClaimGen($"{prefix}{i}"))
        select claims;

    private sealed record Case(long Capacity, CpuClaim[] Claims, CpuClaim[] Shuffled);

    private static readonly Arbitrary<Case> Cases = (
        from capacity in CapacityGen
        from claims in ClaimsGen("vm", 30)
        from shuffled in Gen.Shuffle(claims)
        select new Case(capacity, claims, shuffled)).ToArbitrary();

    private static readonly Arbitrary<(long Capacity, PoolClaim[] Pools)> PoolCases = (
        from capacity in CapacityGen
        from count in Gen.Choose(0, 6)
        from pools in Gen.CollectToArray(Enumerable.Range(0, count), PoolGen)
        select (capacity, pools)).ToArbitrary();

    private static Gen<PoolClaim> PoolGen(int index) =>
        from shares in Gen.Frequency((1, Gen.Constant<long?>(null)), (2, SharesGen.Select(s => (long?)s)))
        from reservation in Gen.Frequency((2, Gen.Constant(0L)), (1, Gen.Choose(0, 8000).Select(r => (long)r)))
        from limit in Gen.Frequency((1, Gen.Constant<long?>(null)), (1, Gen.Choose(0, 16_000).Select(l => (long?)l)))
        from members in ClaimsGen($"p{index}.vm", 8)
        select new PoolClaim($"p{index}", shares, reservation, limit, members);

    private static long Cap(CpuClaim c) => Math.Min(c.LimitMillicores, c.DemandMillicores);

    private static long Floor(CpuClaim c) => Math.Min(c.ReservationMillicores, Cap(c));

    private static bool ReservationsFit(Case c) => c.Claims.Sum(Floor) <= c.Capacity;

    [Property(MaxTest = 300)]
    public Property The_total_never_exceeds_the_capacity() => Prop.ForAll(Cases, c =>
    {
        var result = Entitlements.Divide(c.Capacity, c.Claims);
        return result.Count == c.Claims.Length && result.Values.All(e => e >= 0) && result.Values.Sum() <= c.Capacity;
    });

    [Property(MaxTest = 300)]
    public Property Limits_and_demand_are_always_respected() => Prop.ForAll(Cases, c =>
    {
        var result = Entitlements.Divide(c.Capacity, c.Claims);
        return c.Claims.All(claim => result[claim.Id] <= Cap(claim));
    });

    [Property(MaxTest = 300)]
    public Property Admitted_reservations_are_met() => Prop.ForAll(Cases, c =>
    {
        var result = Entitlements.Divide(c.Capacity, c.Claims);
        return !ReservationsFit(c) || c.Claims.All(claim => result[claim.Id] >= Floor(claim));
    });

    [Property(MaxTest = 300)]
    public Property Over_admitted_reservations_take_exactly_the_capacity_and_no_more_than_each_reservation() => Prop.ForAll(Cases, c =>
    {
        var result = Entitlements.Divide(c.Capacity, c.Claims);
        return ReservationsFit(c)
               || (result.Values.Sum() == c.Capacity && c.Claims.All(claim => result[claim.Id] <= Floor(claim)));
    });

    [Property(MaxTest = 300)]
    public Property The_division_is_work_conserving() => Prop.ForAll(Cases, c =>
    {
        var result = Entitlements.Divide(c.Capacity, c.Claims);
        var total = result.Values.Sum();
        return total == Math.Min(c.Capacity, c.Claims.Sum(Cap))
               && (total == c.Capacity || c.Claims.All(claim => result[claim.Id] == Cap(claim)));
    });

    /// <summary>
    /// Between floor and cap, e ≈ λ·s within one millicore, so e_i·s_j − e_j·s_i lies within ±(s_i + s_j).
    /// </summary>
    [Property(MaxTest = 300)]
    public Property Unconstrained_claims_are_proportional_to_their_shares() => Prop.ForAll(Cases, c =>
    {
        var result = Entitlements.Divide(c.Capacity, c.Claims);
        var free = c.Claims.Where(claim => Floor(claim) < result[claim.Id] && result[claim.Id] < Cap(claim)).ToList();
        return !ReservationsFit(c) || free.All(i => free.All(j =>
            Math.Abs(result[i.Id] * j.Shares - result[j.Id] * i.Shares) <= i.Shares + j.Shares));
    });

    /// <summary>
    /// A claim held at its reservation would not get more by shares (λ·s ≤ floor + 1), and one held at its cap would
    /// get at least that much (λ·s ≥ cap − 1): compared with λ as read off a free claim, e/s within 1/s.
    /// </summary>
    [Property(MaxTest = 300)]
    public Property Claims_held_at_their_reservation_or_cap_are_held_there_by_the_shares_too() => Prop.ForAll(Cases, c =>
    {
        var result = Entitlements.Divide(c.Capacity, c.Claims);
        var free = c.Claims.Where(claim => Floor(claim) < result[claim.Id] && result[claim.Id] < Cap(claim)).ToList();
        var atFloor = c.Claims.Where(claim => Floor(claim) < Cap(claim) && result[claim.Id] == Floor(claim));
        var atCap = c.Claims.Where(claim => Floor(claim) < Cap(claim) && result[claim.Id] == Cap(claim));
        return !ReservationsFit(c) || free.All(j =>
            atFloor.All(i => (result[j.Id] - 1) * i.Shares <= (Floor(i) + 1) * j.Shares)
            && atCap.All(i => (result[j.Id] + 1) * i.Shares >= (Cap(i) - 1) * j.Shares));
    });

    [Property(MaxTest = 300)]
    public Property The_order_of_the_claims_does_not_matter() => Prop.ForAll(Cases, c =>
    {
        var first = Entitlements.Divide(c.Capacity, c.Claims);
        var second = Entitlements.Divide(c.Capacity, c.Shuffled);
        return c.Claims.All(claim => first[claim.Id] == second[claim.Id]);
    });

    [Property(MaxTest = 300)]
    public Property Pools_never_exceed_the_capacity_nor_their_limits() => Prop.ForAll(PoolCases, c =>
    {
        var result = Entitlements.DivideInPools(c.Capacity, c.Pools);
        var members = c.Pools.SelectMany(p => p.Members).ToList();
        return result.Count == members.Count
               && result.Values.Sum() <= c.Capacity
               && members.All(m => 0 <= result[m.Id] && result[m.Id] <= Cap(m))
               && c.Pools.All(p => p.Members.Sum(m => result[m.Id]) <= (p.LimitMillicores ?? None));
    });

    [Property(MaxTest = 300)]
    public Property Pools_are_work_conserving_and_meet_admitted_reservations() => Prop.ForAll(PoolCases, c =>
    {
        var result = Entitlements.DivideInPools(c.Capacity, c.Pools);
        var poolCaps = c.Pools.Select(p => Math.Min(p.LimitMillicores ?? None, p.Members.Sum(Cap))).ToList();
        var poolFloors = c.Pools.Select((p, k) => p.Members.Count == 0 ? 0
            : Math.Min(poolCaps[k], Math.Max(p.ReservationMillicores, p.Members.Sum(Floor)))).ToList();
        var admitted = poolFloors.Sum() <= c.Capacity;
        return result.Values.Sum() == Math.Min(c.Capacity, poolCaps.Sum())
               && (!admitted || c.Pools.Select((p, k) => p.Members.Sum(m => result[m.Id]) >= poolFloors[k]).All(ok => ok));
    });
}
