// How a host's CPU is divided among its VMs, vSphere style: reservations first, then shares, never past a limit.
using System.Diagnostics;

namespace Orchestrator.Domain.Shares;

/// <summary>One VM's claim on a host's CPU. Millicores: 1000 = one physical CPU.</summary>
/// <param name="Id">Unique among the claims divided together.</param>
/// <param name="Shares">Relative weight under contention; at least 1.</param>
/// <param name="ReservationMillicores">Guaranteed when the VM wants it (admission control keeps the sum within capacity).</param>
/// <param name="LimitMillicores">Never exceeded, even on an idle host; <see cref="long.MaxValue"/> for none.</param>
/// <param name="DemandMillicores">What the VM would use now; more is never handed out, so idle VMs leave room for busy ones.</param>
public sealed record CpuClaim(string Id, long Shares, long ReservationMillicores, long LimitMillicores, long DemandMillicores);

/// <summary>
/// A tenant's resource pool: its own shares (null = the sum of its members' shares), reservation and limit (null = none),
/// and its VMs.
/// </summary>
public sealed record PoolClaim(string Id, long? Shares, long ReservationMillicores, long? LimitMillicores, IReadOnlyList<CpuClaim> Members);

/// <summary>
/// Water-filling: each claim gets clamp(λ·shares, floor, cap) with cap = min(limit, demand), floor = min(reservation, cap)
/// and λ the largest level whose total fits the capacity. λ is found exactly (rational arithmetic in <see cref="Int128"/>),
/// so the result depends on the claims only, not on their order or on floating-point rounding.
/// </summary>
/// <remarks>
/// Assumes the totals of shares and of millicores fit a <see cref="long"/>; past that the arithmetic is checked and throws
/// <see cref="OverflowException"/> rather than answer wrongly.
/// </remarks>
public static class Entitlements
{
    /// <summary>Divides capacity among the claims; returns millicores per claim id (every id present).</summary>
    /// <remarks>
    /// When the caps fit, every claim gets its cap and the rest stays unused. When the floors alone do not fit
    /// (over-admitted reservations), the floors are scaled down in proportion and nothing else is given.
    /// </remarks>
    /// <exception cref="ArgumentException">Negative capacity; a claim without an id, with a duplicate id, shares below 1
    /// or a negative reservation, limit or demand.</exception>
    public static IReadOnlyDictionary<string, long> Divide(long capacityMillicores, IReadOnlyList<CpuClaim> claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        RequireCapacity(capacityMillicores);
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var claim in claims)
        {
            RequireValid(claim, ids, nameof(claims));
        }

        var result = new Dictionary<string, long>(claims.Count, StringComparer.Ordinal);
        DivideInto(capacityMillicores, claims, result);
        return result;
    }

    /// <summary>
    /// Two levels: capacity among pools (as if each pool were one claim), then each pool's entitlement among its members.
    /// Returns millicores per member id.
    /// </summary>
    /// <remarks>
    /// A pool's cap is min(its limit, Σ member caps), its floor min(cap, max(its reservation, Σ member floors)), so a pool
    /// never takes more than its VMs can use and always covers their reservations when it can. A pool with no members
    /// takes nothing.
    /// </remarks>
    /// <exception cref="ArgumentException">As <see cref="Divide"/>, for pools and members alike; member ids must be unique
    /// across pools.</exception>
    public static IReadOnlyDictionary<string, long> DivideInPools(long capacityMillicores, IReadOnlyList<PoolClaim> pools)
    {
        ArgumentNullException.ThrowIfNull(pools);
        RequireCapacity(capacityMillicores);
        var poolIds = new HashSet<string>(StringComparer.Ordinal);
        var memberIds = new HashSet<string>(StringComparer.Ordinal);
        var asClaims = new List<CpuClaim>(pools.Count);
        foreach (var pool in pools)
        {
            RequireValid(pool, poolIds, nameof(pools));
            Int128 capSum = 0, floorSum = 0, shareSum = 0;
            foreach (var member in pool.Members)
            {
                RequireValid(member, memberIds, nameof(pools));
                var (floor, cap) = Bounds(member);
                capSum += cap;
                floorSum += floor;
                shareSum += member.Shares;
            }

            if (pool.Members.Count == 0)
            {
                continue;
            }

            var poolCap = Math.Min(pool.LimitMillicores ?? long.MaxValue, Saturate(capSum));
            var poolFloor = Math.Min(poolCap, Math.Max(pool.ReservationMillicores, Saturate(floorSum)));
            asClaims.Add(new CpuClaim(pool.Id, pool.Shares ?? Saturate(shareSum), poolFloor, poolCap, poolCap));
        }

        var perPool = new Dictionary<string, long>(asClaims.Count, StringComparer.Ordinal);
        DivideInto(capacityMillicores, asClaims, perPool);
        var result = new Dictionary<string, long>(memberIds.Count, StringComparer.Ordinal);
        foreach (var pool in pools)
        {
            if (pool.Members.Count > 0)
            {
                DivideInto(perPool[pool.Id], pool.Members, result);
            }
        }

        return result;
    }

    private static void DivideInto(long capacity, IReadOnlyList<CpuClaim> claims, Dictionary<string, long> result)
    {
        var n = claims.Count;
        var floors = new long[n];
        var caps = new long[n];
        Int128 floorSum = 0, capSum = 0;
        for (var i = 0; i < n; i++)
        {
            (floors[i], caps[i]) = Bounds(claims[i]);
            floorSum += floors[i];
            capSum += caps[i];
        }

        var given = capSum <= capacity ? caps
            : floorSum > capacity ? ScaleFloors(capacity, claims, floors, floorSum)
            : WaterFill(capacity, claims, floors, caps, floorSum);
        for (var i = 0; i < n; i++)
        {
            result.Add(claims[i].Id, given[i]);
        }
    }

    /// <summary>Reservations were over-admitted: each gets floor·capacity/Σfloor, so the total is exactly the capacity.</summary>
    private static long[] ScaleFloors(long capacity, IReadOnlyList<CpuClaim> claims, long[] floors, Int128 floorSum)
    {
        var given = new long[floors.Length];
        var fractions = new List<Fraction>();
        long total = 0;
        for (var i = 0; i < floors.Length; i++)
        {
            var scaled = checked((Int128)floors[i] * capacity);
            given[i] = (long)(scaled / floorSum);
            total += given[i];
            AddFraction(fractions, claims, i, scaled % floorSum);
        }

        HandOutLeftover(capacity - total, fractions, given);
        return given;
    }

    /// <summary>
    /// Σ clamp(λ·s, floor, cap) is continuous, nondecreasing and linear between the breakpoints floor/s (where a claim
    /// starts to grow) and cap/s (where it stops). Sweep them in order, keeping the total as constant + λ·slope, until
    /// the total would pass the capacity; λ then solves the linear piece exactly: λ = (capacity − constant) / slope.
    /// </summary>
    private static long[] WaterFill(long capacity, IReadOnlyList<CpuClaim> claims, long[] floors, long[] caps, Int128 floorSum)
    {
        var n = floors.Length;
        var breakpoints = new List<Breakpoint>(2 * n);
        for (var i = 0; i < n; i++)
        {
            if (floors[i] < caps[i])
            {
                breakpoints.Add(new Breakpoint(floors[i], claims[i].Shares, i, Starts: true));
                breakpoints.Add(new Breakpoint(caps[i], claims[i].Shares, i, Starts: false));
            }
        }

        breakpoints.Sort(static (a, b) => ((Int128)a.Millicores * b.Shares).CompareTo((Int128)b.Millicores * a.Shares));

        // Equal breakpoints may go in any order: the total is continuous, so it is the same before and after each.
        Int128 constant = floorSum, slope = 0;
        foreach (var point in breakpoints)
        {
            // total(λ) > capacity at λ = millicores/shares, multiplied through by shares; constant ≤ capacity here.
            if (checked(slope * point.Millicores) > checked((capacity - constant) * point.Shares))
            {
                break;
            }

            if (point.Starts)
            {
                constant -= floors[point.Claim];
                slope += claims[point.Claim].Shares;
            }
            else
            {
                constant += caps[point.Claim];
                slope -= claims[point.Claim].Shares;
            }
        }

        // Σcap > capacity, so the sweep stopped inside a rising piece: slope > 0. λ = level / slope.
        Debug.Assert(slope > 0);
        var level = capacity - constant;
        var given = new long[n];
        var fractions = new List<Fraction>();
        long total = 0;
        for (var i = 0; i < n; i++)
        {
            var scaled = checked(level * claims[i].Shares); // λ·s·slope
            if (scaled <= checked(floors[i] * slope))
            {
                given[i] = floors[i];
            }
            else if (scaled >= checked(caps[i] * slope))
            {
                given[i] = caps[i];
            }
            else
            {
                given[i] = (long)(scaled / slope);
                AddFraction(fractions, claims, i, scaled % slope);
            }

            total += given[i];
        }

        HandOutLeftover(capacity - total, fractions, given);
        return given;
    }

    private static void AddFraction(List<Fraction> fractions, IReadOnlyList<CpuClaim> claims, int i, Int128 remainder)
    {
        if (remainder > 0)
        {
            fractions.Add(new Fraction(remainder, claims[i].Id, i));
        }
    }

    /// <summary>
    /// The exact values sum to the capacity, so the leftover after flooring is less than the number of claims with a
    /// fraction; each of those is strictly below its cap, so one more millicore keeps it within. Largest remainder first
    /// (the remainders share one denominator), then the ordinal id, so the order of the claims never matters.
    /// </summary>
    private static void HandOutLeftover(long leftover, List<Fraction> fractions, long[] given)
    {
        Debug.Assert(leftover >= 0 && leftover <= fractions.Count);
        if (leftover == 0)
        {
            return;
        }

        fractions.Sort(static (a, b) =>
        {
            var byRemainder = b.Remainder.CompareTo(a.Remainder);
            return byRemainder != 0 ? byRemainder : string.CompareOrdinal(a.Id, b.Id);
        });
        for (var k = 0; k < leftover; k++)
        {
            given[fractions[k].Claim]++;
        }
    }

    private static (long Floor, long Cap) Bounds(CpuClaim claim)
    {
        var cap = Math.Min(claim.LimitMillicores, claim.DemandMillicores);
        return (Math.Min(claim.ReservationMillicores, cap), cap);
    }

    private static long Saturate(Int128 value) => value > long.MaxValue ? long.MaxValue : (long)value;

    private static void RequireCapacity(long capacityMillicores)
    {
        if (capacityMillicores < 0)
        {
            throw new ArgumentException($"capacity is negative: {capacityMillicores} millicores", nameof(capacityMillicores));
        }
    }

    private static void RequireValid(CpuClaim? claim, HashSet<string> ids, string paramName)
    {
        if (claim?.Id is null)
        {
            throw new ArgumentException("a CPU claim has no id", paramName);
        }

        var problem = claim.Shares < 1 ? $"shares {claim.Shares} (at least 1)"
            : claim.ReservationMillicores < 0 ? $"a negative reservation ({claim.ReservationMillicores})"
            : claim.LimitMillicores < 0 ? $"a negative limit ({claim.LimitMillicores})"
            : claim.DemandMillicores < 0 ? $"a negative demand ({claim.DemandMillicores})"
            : !ids.Add(claim.Id) ? "an id already used"
            : null;
        if (problem is not null)
        {
            throw new ArgumentException($"CPU claim '{claim.Id}' has {problem}", paramName);
        }
    }

    private static void RequireValid(PoolClaim? pool, HashSet<string> ids, string paramName)
    {
        if (pool?.Id is null || pool.Members is null)
        {
            throw new ArgumentException($"a pool has no {(pool?.Id is null ? "id" : "member list")}", paramName);
        }

        var problem = pool.Shares < 1 ? $"shares {pool.Shares} (at least 1)"
            : pool.ReservationMillicores < 0 ? $"a negative reservation ({pool.ReservationMillicores})"
            : pool.LimitMillicores < 0 ? $"a negative limit ({pool.LimitMillicores})"
            : !ids.Add(pool.Id) ? "an id already used"
            : null;
        if (problem is not null)
        {
            throw new ArgumentException($"pool '{pool.Id}' has {problem}", paramName);
        }
    }

    /// <summary>The claim's share grows from λ = Millicores/Shares (Starts) or stops growing there.</summary>
    private readonly record struct Breakpoint(long Millicores, long Shares, int Claim, bool Starts);

    /// <summary>What flooring cut off a claim's exact value, over the division's common denominator.</summary>
    private readonly record struct Fraction(Int128 Remainder, string Id, int Claim);
}
