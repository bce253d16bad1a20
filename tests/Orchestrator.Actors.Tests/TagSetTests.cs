using System.Collections.Immutable;
using Orchestrator.Actors.Events;
using Orchestrator.Actors.Persistence;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Actors.Tests;

public class TagSetTests
{
    [Fact]
    public void A_tag_set_answers_as_the_hash_set_of_its_tags()
    {
        var set = TagSet.Of(["tenant:acme", "host:h1"]);
        var hashed = ImmutableHashSet.Create("tenant:acme", "host:h1");

        Assert.Equal(2, set.Count);
        Assert.True(set.Contains("host:h1"));
        Assert.False(set.Contains("host:h2"));
        Assert.True(set.SetEquals(hashed));
        Assert.True(hashed.SetEquals(set));
        Assert.True(set.Add("x").SetEquals(hashed.Add("x")));
        Assert.True(set.Remove("host:h1").SetEquals(["tenant:acme"]));
        Assert.Empty(set.Clear());
        Assert.Same(TagSet.Empty, TagSet.Of([]));
    }

    [Fact]
    public void A_tag_given_twice_is_refused()
    {
        Assert.Throws<ArgumentException>(() => TagSet.Of(["tenant:acme", "tenant:acme"]));
    }

    [Fact]
    public void A_placement_is_tagged_by_its_tenant_only_and_a_host_event_not_at_all()
    {
        var vm = new VmId(Guid.NewGuid());
        var requested = new VmRequested(vm, new TenantId("acme"), new VmSpec("web1", 1, 256, "demo"), DateTimeOffset.UnixEpoch);
        var decided = LedgerState.Empty.Apply(requested);

        Assert.Equal(["tenant:acme"], EventTags.For(LedgerState.Empty, requested));
        // Tagged against the state it was decided on, where its VmRequested already is.
        Assert.Equal(["tenant:acme"], EventTags.For(decided, new VmPlaced(vm, new HostId("h1"), new Epoch(1))));
        Assert.Empty(EventTags.For(decided, new HostRegistered(new HostId("h1"), 4, 4096, "qemu", DateTimeOffset.UnixEpoch)));
        Assert.Equal(["tenant:acme"], EventTags.For(LedgerState.Empty, new TenantCreated(new TenantId("acme"), TenantQuota.Unlimited, DateTimeOffset.UnixEpoch)));
        Assert.Same(EventTags.Tenant(new TenantId("acme")), EventTags.Tenant(new TenantId("acme")));
    }
}
