using Orchestrator.Tools.Chaos;

namespace Orchestrator.Tools.Tests;

public sealed class NemesisPlanTests
{
    private static readonly IReadOnlySet<FaultKind> All = Enum.GetValues<FaultKind>().ToHashSet();

    [Fact]
    public void A_seed_gives_the_same_schedule_every_time()
    {
        Assert.Equal(NemesisPlan.Create(7, 3, 600, All), NemesisPlan.Create(7, 3, 600, All));
        Assert.NotEqual(NemesisPlan.Create(7, 3, 600, All), NemesisPlan.Create(8, 3, 600, All));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void An_overlapping_fault_never_takes_a_second_host_away(int seed)
    {
        var plan = NemesisPlan.Create(seed, 3, 3600, All);

        Assert.All(plan, e =>
        {
            Assert.Contains(e.Primary.Kind, NemesisPlan.HostFaults);
            Assert.InRange(e.Primary.Host, 1, 3);
            if (e.Overlapping is { } second)
            {
                Assert.Contains(second.Kind, NemesisPlan.MemberFaults);
                Assert.True(second.Kind == FaultKind.RestartPostgres || second.Host != e.Primary.Host, "a slow disk lands on another host");
            }
        });
        Assert.Equal(All, plan.SelectMany(e => new[] { e.Primary.Kind, e.Overlapping?.Kind ?? e.Primary.Kind }).ToHashSet());
    }

    [Fact]
    public void Only_the_kinds_asked_for_are_planned()
    {
        var plan = NemesisPlan.Create(1, 3, 600, new HashSet<FaultKind> { FaultKind.Partition });

        Assert.All(plan, e => Assert.Equal(FaultKind.Partition, e.Primary.Kind));
        Assert.All(plan, e => Assert.Null(e.Overlapping));
    }

    [Fact]
    public void Fewer_than_three_hosts_or_no_kinds_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => NemesisPlan.Create(1, 2, 600, All));
        Assert.Throws<ArgumentException>(() => NemesisPlan.Create(1, 3, 600, new HashSet<FaultKind>()));
    }
}
