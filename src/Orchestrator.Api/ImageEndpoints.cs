using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Contracts;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor.Storage;
using static Orchestrator.Api.OrchestratorApi;

namespace Orchestrator.Api;

/// <summary>
/// Images (issue 18, part 5): the catalog's and the imported ones a tenant sees; an import streams the raw bytes into the
/// image store under an id-made name, checks them (<see cref="ImageImport"/>), then records the image, charged to the
/// tenant's storage quota (a public image to nobody). A refused import leaves no file and no record. Another tenant's private image is not found, exactly as one that does not exist.
/// </summary>
public static class ImageEndpoints
{
    public static RouteGroupBuilder MapImages(this RouteGroupBuilder v1, ImageCatalog catalog, ImageImportSettings? import)
    {
        v1.MapGet("/images", async (HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var imported = await AskAsync<ImageReplies.ImageList>(scheduler, new ImageQueries.ListImages(Acting(http)), ct);
            return Results.Json(catalog.All.Select(i => i.ToDto()).Concat(imported.Images.Select(ToDto)).ToList(), Json);
        });

        v1.MapGet("/images/{name}", async (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            if (catalog.Find(name) is { } known)
            {
                return Results.Json(known.ToDto(), Json);
            }

            var imported = await AskAsync<ImageReplies.ImageList>(scheduler, new ImageQueries.ListImages(Acting(http)), ct);
            return imported.Images.FirstOrDefault(i => i.Name == name) is { } found
                ? Results.Json(ToDto(found), Json)
                : FromRefusal(Refusal.NotFound($"no image '{FieldError.Echo(name)}'"));
        });

        // ?name=N&format=qcow2|raw&kernel=CATALOG-IMAGE&public=false; the body is the image itself (application/octet-stream).
        v1.MapPost("/images", (HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
                import is null
                    ? Task.FromResult(Problem(StatusCodes.Status503ServiceUnavailable, "no image store", "this node keeps no image store"))
                    : ImportAsync(request, scheduler, catalog, import, ct))
            // No Accepts metadata: it would answer 415 before the query is checked; any media type's body is read as the image.
            .RequireWrite().Produces<ImageDto>(StatusCodes.Status201Created);

        v1.MapDelete("/images/{name}", async (string name, HttpContext http, ActorSystem system, IRequiredActor<SchedulerProxy> scheduler,
            CancellationToken ct) =>
        {
            var reply = await AskAsync<object>(scheduler, new ImageCommands.DeleteImage(Acting(http), name), ct);
            if (reply is ImageReplies.ImageAccepted { Image: var gone } && import is not null)
            {
                // Recorded gone first: a file without a record is never booted, a record without its file would be. This
                // node's copy goes now (the answer promises it); the copies other nodes hold or fetched go as they hear.
                File.Delete(import.PathOf(gone.Disk));
                Orchestrator.Actors.Images.ImageStoreActor.DiscardEverywhere(system, gone.Disk);
                return Results.NoContent();
            }

            return reply is ImageReplies.ImageAccepted ? Results.NoContent() : NoContentOrRefusal(reply);
        }).RequireWrite();

        return v1;
    }

    private static async Task<IResult> ImportAsync(HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, ImageCatalog catalog,
        ImageImportSettings import, CancellationToken ct)
    {
        var http = request.HttpContext;
        var query = request.Query;
        var name = query["name"].ToString();
        var format = query["format"].Count > 0 ? query["format"].ToString() : ImageFormats.Qcow2;
        var kernel = query["kernel"].ToString();
        var errors = new List<FieldError>();
        if (name.Length == 0)
        {
            errors.Add(new FieldError("name", "is required"));
        }
        else if (!VmSpecValidator.IsValidName(name))
        {
            errors.Add(new FieldError("name", "must be 1-63 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'"));
        }
        else if (catalog.Find(name) is not null)
        {
            errors.Add(new FieldError("name", $"'{name}' is a catalog image's name"));
        }

        if (!ImageFormats.Known.Contains(format, StringComparer.Ordinal))
        {
            errors.Add(new FieldError("format", $"must be one of {string.Join(", ", ImageFormats.Known)}, was '{FieldError.Echo(format)}'"));
        }

        if (kernel.Length == 0)
        {
            errors.Add(new FieldError("kernel", "is required"));
        }
        else if (catalog.Find(kernel) is null)
        {
            errors.Add(new FieldError("kernel", $"unknown catalog image '{FieldError.Echo(kernel)}'; known: {string.Join(", ", catalog.Names.Order(StringComparer.Ordinal))}"));
        }

        var isPublic = false;
        if (query["public"].Count > 0 && !bool.TryParse(query["public"].ToString(), out isPublic))
        {
            errors.Add(new FieldError("public", "must be true or false"));
        }

        if (errors.Count > 0)
        {
            return Invalid(errors);
        }

        if (isPublic && !http.Principal().IsAdmin)
        {
            return FromRefusal(Refusal.Forbidden(new FieldError("public", "only an admin may make a public image")));
        }

        var tenant = isPublic ? TenantId.System : Acting(http);
        // Before the upload is read: a name already taken is answered without taking gigabytes first (the ledger checks again).
        var seen = await AskAsync<ImageReplies.ImageList>(scheduler, new ImageQueries.ListImages(tenant), ct);
        if (seen.Images.Any(i => i.Name == name))
        {
            return FromRefusal(Refusal.Conflict("name", $"an image named '{name}' already exists"));
        }

        if (request.ContentLength > import.MaxBytes)
        {
            return Invalid([new FieldError("file", $"the image is larger than the {import.MaxBytes} bytes an upload may have")]);
        }

        // A private image of a known length that would not fit the tenant's storage quota is refused before a byte is read;
        // the ledger checks again when it records the image (a chunked upload, or two imports racing, meet that check).
        if (!isPublic && request.ContentLength is { } length)
        {
            var found = await AskAsync<SchedulerReplies.TenantFound>(scheduler, new SchedulerQueries.GetTenant(tenant), ct);
            var more = ImageRecord.GiBHolding(found.ImageBytes + length) - ImageRecord.GiBHolding(found.ImageBytes);
            if (found.Tenant?.Quota.StorageExceeded(found.StorageGiB, more, "file") is { } exceeded)
            {
                return FromRefusal(Refusal.Forbidden(exceeded));
            }
        }

        // The API's body limit is for JSON; an upload is capped by the import itself, which answers naming the field.
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = null;
        }

        var id = NewId("img-", 8);
        var path = Path.Combine(import.Store, $"{id}.{format}");
        ImportedImage imported;
        try
        {
            imported = await ImageImport.ImportAsync(request.Body, format, path, import.MaxBytes, import.MaxVirtualBytes, ct);
        }
        catch (ImageRefusedException refused)
        {
            return Invalid([new FieldError(refused.Field, refused.Message)]);
        }

        object reply;
        try
        {
            reply = await AskAsync<object>(scheduler, new ImageCommands.RegisterImage(id, tenant, name, isPublic, format, imported.Sha256,
                imported.Bytes, imported.VirtualBytes, kernel), ct);
        }
        catch
        {
            File.Delete(path);
            throw;
        }

        if (reply is not ImageReplies.ImageAccepted)
        {
            File.Delete(path);
        }

        return JsonOrRefusal<ImageReplies.ImageAccepted>(reply, a => ToDto(a.Image), StatusCodes.Status201Created);
    }

    public static ImageDto ToDto(ImageRecord image) => new(image.Name, $"imported {image.Format} image, booted with {image.Boot}'s kernel",
        "imported", image.Id, image.Tenant.Value, image.Public, image.Format, image.Sha256, image.Bytes, image.VirtualBytes, image.Boot,
        image.CreatedAt);
}
