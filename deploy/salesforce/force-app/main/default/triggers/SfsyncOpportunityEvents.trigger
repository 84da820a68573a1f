/** Sends sfsync a signed change event for the Opportunitys of each committed insert, update, delete and undelete. */
trigger SfsyncOpportunityEvents on Opportunity (after insert, after update, after delete, after undelete) {
    SfsyncEvents.fromTrigger('Opportunity', Trigger.operationType, Trigger.isDelete ? Trigger.oldMap.keySet() : Trigger.newMap.keySet());
}
